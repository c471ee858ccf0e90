--[[ fleet_seen: note that a node reaches Redis now, and tell whether Redis itself was out.
  Every node's reaper calls it before it reaps. Leases expire by the Redis clock, which runs
  on while Redis is down, stalled or unreachable from every node: after such an outage every
  lease in flight looks expired, though no node died. So when no node has reached Redis for
  longer than a lease TTL, the gap was Redis's, and a grace of one more TTL begins, in which
  reapers leave expired leases to their holders: a live holder renews its leases (or gives
  its runs back) and a dead one's are reaped once the grace is over. A single node cut off
  from Redis while others reach it starts no grace: its leases are reaped as ever.
  KEYS[1] the fleet record (HASH: seen, grace_until, gap_ms)
  ARGV[1] lease TTL in ms (the grace)
  ARGV[2] the longest a live fleet goes without a call (ms): the TTL, or more when reapers tick
    more slowly than that
  Returns: {grace_until ms (0: none yet), now ms, the gap in ms when this call began a grace else 0} ]]
--@include keys
--@include common
local ttl, quiet = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = now_ms()
local f = call('HMGET', KEYS[1], 'seen', 'grace_until')
local seen, grace = tonumber(f[1]), tonumber(f[2]) or 0
local gap = 0
if seen and now - seen > quiet then
  gap = now - seen
  grace = now + ttl
  call('HSET', KEYS[1], 'grace_until', grace, 'gap_ms', gap)
end
call('HSET', KEYS[1], 'seen', now)
-- (kept a day past the last node's call: a fleet stopped longer starts with no grace)
call('PEXPIRE', KEYS[1], 86400000)
return {grace, now, gap}
