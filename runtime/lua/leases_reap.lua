--[[ leases_reap: reclaim leases that expired by the Redis server's clock.
  The node that held them is presumed dead (crashed, killed, partitioned):
  each such attempt is recorded as crashed and the run is retried with its
  backoff or dead-lettered, exactly like a failed attempt. A run whose
  cancellation was requested ends canceled instead. A run still sitting in
  the node's hand-off list (leased to a waiting node that never took it) was
  never started: it is released, queued again without charging the attempt.
  KEYS[1] partition leased set (ZSET id -> expiry ms)
  ARGV[1] partition key prefix
  ARGV[2] max leases to reap in this call
  ARGV[3] finished-run TTL ms   ARGV[4] dead-letter TTL ms   ARGV[5] index cap
  ARGV[6] jitter random in [0,1)
  ARGV[7] wake channel
  Returns: flat list id, lease node, new status per reaped run ]]
--@include keys
--@include common
--@include statuses
--@include messages
--@include settle
--@include claim_reply
--@include affinity
--@include flow
--@include claim
local pfx = ARGV[1]
local now = now_ms()
local ids = call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  local rk = K.run(pfx, id)
  local node = call('HGET', rk, 'lease_node') or ''
  if call('EXISTS', rk) == 0 then
    call('ZREM', KEYS[1], id)
  else
    local outcome = 'crashed'
    local err = cjson.encode({message = 'lease expired: worker ' .. node .. ' stopped renewing', type = 'LeaseExpired'})
    if node ~= '' and never_received(pfx, node, id) then
      outcome = 'released'
      err = cjson.encode({message = 'lease expired before worker ' .. node .. ' took the run', type = 'LeaseExpired'})
    end
    local st = settle(pfx, id, outcome, '', err, '0', now, ARGV[6],
      tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]))
    out[#out + 1] = id
    out[#out + 1] = node
    out[#out + 1] = st
  end
end
if #out > 0 then call('PUBLISH', ARGV[7], pfx) end
return out
