--[[ leases_renew: extend every lease this node still owns, in one call.
  A lease is extended only while its token matches (fencing); a run whose
  cancellation was requested is reported so the node can stop its handler.
  The call also notes, in the partition's renewers hash, that this node process
  renewed now with every lease it held: a lease granted to it more than `margin`
  ms before and not in the call is one it never got (a claim's or a hand-off
  pop's reply lost on the way), which leases_reap gives back uncharged. The node
  calls even when it holds nothing here, every renewal interval, and once before
  its first claim here (fetcher.ready_partition), which begins its incarnation
  before any grant to it. A call for some of
  the node's leases only (a handler confirming its own) passes no incarnation, and
  notes nothing.
  KEYS[1] partition leased set (ZSET id -> expiry ms)
  ARGV[1] partition key prefix
  ARGV[2] lease TTL in ms
  ARGV[3] node id   ARGV[4] this node process's incarnation (a random id; '' for a partial call)
  ARGV[5] margin ms: the longest from a grant to a renewal of the node listing it (a reply's wait, and then some)
  ARGV[6..] pairs of run id, lease token
  Returns: {lost ids, ids with cancellation requested} ]]
--@include keys
--@include common
--@include renewers
local pfx, ttl = ARGV[1], tonumber(ARGV[2])
local node, incarnation = ARGV[3], ARGV[4]
local now = now_ms()
local lost, cancel = {}, {}
for i = 6, #ARGV, 2 do
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
if incarnation ~= '' then
  local rk_renewers = K.renewers(pfx)
  -- the first renewal of this incarnation: grants to the node id before it were an earlier process's
  local first = now
  local last = call('HGET', rk_renewers, node)
  if last then
    local was, since = renewer_fields(last)
    if was == incarnation and since then first = since end
  end
  call('HSET', rk_renewers, node, renewer_entry(incarnation, first, now, ARGV[5]))
  call('PEXPIRE', rk_renewers, 86400000)
  if first == now then
    -- a process begins: the entries of those silent for a day past any lease they could hold go
    -- (node ids come and go with restarts; a start is rare enough to read them all)
    local all = call('HGETALL', rk_renewers)
    for i = 1, #all, 2 do
      local _, _, at = renewer_fields(all[i + 1])
      if not at or at < now - ttl - 86400000 then call('HDEL', rk_renewers, all[i]) end
    end
  end
end
return {lost, cancel}
