--[[ scheduler_lease: take or keep the cluster-wide scheduler lease, so exactly
  one node fires cron schedules. The holder renews it; anyone may take it once
  it lapsed (judged by the Redis clock through PX).
  KEYS[1] the lease (STRING = holder node id)
  ARGV[1] node id
  ARGV[2] lease TTL in ms
  Returns: 1 held by this node | 0 held by another node ]]
local call = redis.call
local holder = call('GET', KEYS[1])
if holder == ARGV[1] then
  call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
  return 1
end
if not holder and call('SET', KEYS[1], ARGV[1], 'NX', 'PX', tonumber(ARGV[2])) then
  return 1
end
return 0
