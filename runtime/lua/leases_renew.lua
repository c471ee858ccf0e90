--[[ leases_renew: extend every lease this node still owns, in one call.
  A lease is extended only while its token matches (fencing); a run whose
  cancellation was requested is reported so the node can stop its handler.
  KEYS[1] partition leased set (ZSET id -> expiry ms)
  ARGV[1] partition key prefix
  ARGV[2] lease TTL in ms
  ARGV[3..] pairs of run id, lease token
  Returns: {lost ids, ids with cancellation requested} ]]
--@include keys
--@include common
local pfx, ttl = ARGV[1], tonumber(ARGV[2])
local now = now_ms()
local lost, cancel = {}, {}
for i = 3, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local rk = K.run(pfx, id)
  local leased, cancel_requested = read_if_leased(rk, token, 'cancel_requested')
  if not leased then
    lost[#lost + 1] = id
  else
    call('ZADD', KEYS[1], 'XX', now + ttl, id)
    call('HSET', rk, 'heartbeat_at', now, 'lease_expires_at', now + ttl)
    if cancel_requested == '1' then cancel[#cancel + 1] = id end
  end
end
return {lost, cancel}
