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
local now = now_ms()
local ids = call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local moved = 0
for _, id in ipairs(ids) do
  call('ZREM', KEYS[1], id)
  local rk = K.run(pfx, id)
  local r = call('HMGET', rk, 'queue', 'priority', 'status')
  if r[1] and r[3] == 'delayed' then
    call('HDEL', rk, 'next_retry_at')
    make_ready(pfx, id, r[1], r[2] or '0', now)
    moved = moved + 1
  end
end
local wk = K.waiting(pfx)
for _, id in ipairs(call('ZRANGEBYSCORE', wk, '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))) do
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
local tk = K.ttl(pfx)
for _, id in ipairs(call('ZRANGEBYSCORE', tk, '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))) do
  call('ZREM', tk, id)
  local rk = K.run(pfx, id)
  local r = call('HMGET', rk, 'status', 'queue', 'concurrency_key')
  if r[1] == 'queued' or r[1] == 'delayed' then
    if r[1] == 'queued' then ready_remove(pfx, id, r[2], r[3]) else call('ZREM', KEYS[1], id) end
    call('HSET', rk, 'error', '{"message":"not started within its TTL","type":"Expired"}')
    make_terminal(pfx, id, 'expired', now, tonumber(ARGV[4]), tonumber(ARGV[5]))
  end
end
if moved > 0 then call('PUBLISH', ARGV[3], pfx) end
local wait = -1
for _, k in ipairs({KEYS[1], wk, tk}) do
  local nxt = call('ZRANGE', k, 0, 0, 'WITHSCORES')
  if #nxt > 0 then
    local w = math.max(tonumber(nxt[2]) - now, 0)
    if wait < 0 or w < wait then wait = w end
  end
end
announce_due(ARGV[3], now, pfx)
return {moved, wait}
