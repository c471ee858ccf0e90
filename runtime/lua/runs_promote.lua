--[[ runs_promote: move delayed runs whose time has come to their ready sets.
  Waiting runs whose deadline passed are resumed too: a sleep is over, or a
  wait for an event, a signal or a token timed out (its step is recorded timed_out).
  KEYS[1] partition delayed set (ZSET id -> due ms)
  ARGV[1] partition key prefix
  ARGV[2] max runs to promote in this call
  ARGV[3] wake channel
  ARGV[4] finished-run TTL ms   ARGV[5] index cap
  Queued or delayed runs past their TTL (expires_at) end expired.
  Returns: {promoted count, ms until the next delayed run is due or -1} ]]
--@include keys
--@include common
local pfx = ARGV[1]
local limit = tonumber(ARGV[2])
local now = now_ms()
local wk, tk = K.waiting(pfx), K.ttl(pfx)
-- Each set's first entry (id, score) as it is now. A call that finds nothing due (a node's tick,
-- most of the time) reads each set once: every redis.call costs Redis several thousand
-- instructions, a range read of nothing included
local function head(k) return call('ZRANGE', k, 0, 0, 'WITHSCORES') end
local function due_ids(k, first)
  if #first == 0 or tonumber(first[2]) > now then return {} end
  return call('ZRANGEBYSCORE', k, '-inf', now, 'LIMIT', 0, limit)
end
local heads = {head(KEYS[1]), head(wk), head(tk)}
local changed = false
local moved = 0
for _, id in ipairs(due_ids(KEYS[1], heads[1])) do
  changed = true
  call('ZREM', KEYS[1], id)
  local rk = K.run(pfx, id)
  local r = call('HMGET', rk, 'queue', 'priority', 'status')
  if r[1] and r[3] == 'delayed' then
    call('HDEL', rk, 'next_retry_at')
    make_ready(pfx, id, r[1], r[2] or '0', now)
    moved = moved + 1
  end
end
for _, id in ipairs(due_ids(wk, heads[2])) do
  changed = true
  local rk = K.run(pfx, id)
  local r = call('HMGET', rk, 'wait_kind', 'wait_step', 'wait_index', 'wait_started_at')
  if r[1] == 'event' or r[1] == 'signal' or r[1] == 'token' then
    complete_wait_step(pfx, id, r[2], r[3], r[4], 'null', 'timed_out', now)
  end
  if resume(pfx, id, now, r[1] == 'sleep' and 'sleep over' or 'timeout') then
    moved = moved + 1
  else
    call('ZREM', wk, id)
  end
end
for _, id in ipairs(due_ids(tk, heads[3])) do
  changed = true
  call('ZREM', tk, id)
  local rk = K.run(pfx, id)
  local r = call('HMGET', rk, 'status', 'queue', 'concurrency_key')
  if r[1] == 'queued' or r[1] == 'delayed' then
    if r[1] == 'queued' then ready_remove(pfx, id, r[2], r[3]) else call('ZREM', KEYS[1], id) end
    call('HSET', rk, 'error', '{"message":"not started within its TTL","type":"Expired"}')
    make_terminal(pfx, id, 'expired', now, tonumber(ARGV[4]), tonumber(ARGV[5]))
  end
end
if moved > 0 then WAKE = true end
-- when the next run is due: from the heads read above, unless this call changed the sets (what it
-- did may have scheduled more: a resumed run, a dependent of an expired one)
if changed then heads = {head(KEYS[1]), head(wk), head(tk)} end
local wait = -1
for _, first in ipairs(heads) do
  if #first > 0 then
    local w = math.max(tonumber(first[2]) - now, 0)
    if wait < 0 or w < wait then wait = w end
  end
end
announce_work(ARGV[3], now, pfx)
return {moved, wait}
