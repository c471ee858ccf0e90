--[[ leases_reap: reclaim leases that expired by the Redis server's clock.
  The node that held them is presumed dead (crashed, killed, partitioned):
  each such attempt is recorded as crashed and the run is retried with its
  backoff or dead-lettered, exactly like a failed attempt. A run whose
  cancellation was requested ends canceled instead. A run still sitting in
  the node's hand-off list (leased to a waiting node that never took it) was
  never started: it is released, queued again without charging the attempt. So
  is a lease its node never got (a claim's or a hand-off pop's reply lost on the
  way), told by the node's renewals (leases_renew.lua): never renewed, while the
  node process it was granted to renewed since, more than its margin after the
  grant (that renewal would have held it, had the node got it).
  The Redis clock runs on while Redis itself is out (down, stalled, unreachable from
  every node), so after such an outage every lease in flight looks expired though no
  node died. Each call notes when a reaper last reached the partition; when none has
  for longer than the quiet limit below, the gap was Redis's, and a grace of one lease
  TTL in which only leases that had expired before the gap began are reaped: a live
  holder renews its leases (renewal takes an expired, unreaped lease whose token still
  matches) or gives its runs back, and a dead one's are reaped after. A gap that begins
  before the grace is over (Redis flapping) extends it, keeping its cut-off. A node cut off
  alone while others reach Redis starts no grace.
  KEYS[1] partition leased set (ZSET id -> expiry ms)
  ARGV[1] partition key prefix
  ARGV[2] max leases to reap in this call
  ARGV[3] finished-run TTL ms   ARGV[4] dead-letter TTL ms   ARGV[5] index cap
  ARGV[6] jitter random in [0,1)
  ARGV[7] wake channel
  ARGV[8] lease TTL ms (the grace)
  ARGV[9] the longest a live fleet leaves a partition unreaped (ms): the TTL, or more
    when reapers tick more slowly than that
  ARGV[10] the calling node's id, ARGV[11] its process's incarnation ('' for a call of no node
    process). A lease granted to the calling process itself, expired less than a lease TTL ago, is
    left to it: the process is alive (it is reaping), and its lease lapsed only while its own loop
    was held (a handler blocking it, a short pause); it renews it (the token still matches) or its
    executor settles the run. One it never got is still given back (below); one lapsed for longer
    (a long pause, or a lease the process lost track of) is reaped as ever.
  Returns: gap ms (when this call began a grace, else 0), ms left of the grace (0: none),
    then id, lease node, new status per reaped run ]]
--@include keys
--@include common
--@include statuses
--@include messages
--@include settle
--@include claim_reply
--@include affinity
--@include flow
--@include claim
--@include renewers
local pfx = ARGV[1]
local now = now_ms()
local rk_reaper = K.reaper(pfx)
local seen_grace = call('HMGET', rk_reaper, 'seen', 'grace_until', 'gap_from')
local seen, grace, gap_from = tonumber(seen_grace[1]), tonumber(seen_grace[2]) or 0, tonumber(seen_grace[3]) or 0
local gap = 0
if seen and now - seen > tonumber(ARGV[9]) then
  -- a gap that began inside the last grace cut it short: the holders it was for may not have
  -- renewed yet, so the new grace is for them too (the cut-off stays where the first gap began)
  if seen >= grace then gap_from = seen end
  gap = now - seen
  grace = now + tonumber(ARGV[8])
  call('HSET', rk_reaper, 'grace_until', grace, 'gap_from', gap_from)
end
call('HSET', rk_reaper, 'seen', now)
-- (kept a day past the last reap: a fleet stopped for longer starts with no grace)
call('PEXPIRE', rk_reaper, 86400000)
-- in a grace, only the leases that had expired before the gap began are reaped: their holders
-- had stopped renewing while Redis could still be reached
local upto = now
if now < grace then upto = gap_from end
local ids = call('ZRANGEBYSCORE', KEYS[1], '-inf', upto, 'LIMIT', 0, tonumber(ARGV[2]))
-- node -> its last renewal here, read once per call (leases_renew.lua)
local renewers = {}
local me, my_incarnation = ARGV[10] or '', ARGV[11] or ''

-- A node's last renewal here (its renewers entry, or false), read once per call.
local function last_renewal(pfx, node, seen)
  local last = seen[node]
  if last == nil then
    last = call('HGET', K.renewers(pfx), node) or false
    seen[node] = last
  end
  return last
end

-- Whether the node a lease expired on got it, by its renewals: 'never' when a renewal of the process
-- it was granted to ran more than `margin` after the grant, and the lease was never renewed; else
-- 'held' (it was renewed, or nothing tells: the node stopped renewing, or the lease was granted to
-- an earlier process with its id), and it is reaped as ever. `lease` is the run's expired_lease.
local function holder_got(pfx, lease, node, seen)
  local granted, renewed = lease.granted, lease.renewed or 0
  if not granted or renewed >= granted then return 'held' end
  local last = last_renewal(pfx, node, seen)
  if not last then return 'held' end
  local _, first, at, margin = renewer_fields(last)
  if not first or first > granted then return 'held' end  -- granted to an earlier process with this id
  if at > granted + margin then return 'never' end
  return 'held'
end
-- Whether a lease on `node` is left to the calling node process (ARGV[10], ARGV[11]): granted to that very
-- process, and expired less than a lease TTL ago (see the header). `lease` is the run's expired_lease.
local function left_to_caller(pfx, lease, node, seen)
  if my_incarnation == '' or node ~= me then return false end
  local last = last_renewal(pfx, node, seen)
  if not last then return false end
  local incarnation, first = renewer_fields(last)
  return incarnation == my_incarnation and first ~= nil and lease.granted ~= nil and lease.granted >= first
    and lease.expires ~= nil and now - lease.expires < tonumber(ARGV[8])
end
-- What both judge an expired lease by, read once per run: when it was granted, last renewed, and expires (Redis ms).
local function expired_lease(rk)
  local f = call('HMGET', rk, 'attempt_started_at', 'heartbeat_at', 'lease_expires_at')
  return {granted = tonumber(f[1]), renewed = tonumber(f[2]), expires = tonumber(f[3])}
end
local out = {gap, now < grace and grace - now or 0}
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
    elseif node ~= '' then
      local lease = expired_lease(rk)
      if holder_got(pfx, lease, node, renewers) == 'never' then
        outcome = 'released'
        err = cjson.encode({message = 'worker ' .. node .. ' never got the lease (its renewals since did not hold it)',
          type = 'LeaseExpired'})
      elseif left_to_caller(pfx, lease, node, renewers) then
        outcome = nil  -- the caller's own, lapsed in its own stall: left to it (see the header)
      end
    end
    if outcome then
      local st = settle(pfx, id, outcome, '', err, '0', now, ARGV[6],
        tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]))
      out[#out + 1] = id
      out[#out + 1] = node
      out[#out + 1] = st
    end
  end
end
if #out > 2 then WAKE = true end
announce_work(ARGV[7], now, pfx)
return out
