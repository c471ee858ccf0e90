--[[ runs_promote: move delayed runs whose time has come to their ready sets.
  KEYS[1] partition delayed set (ZSET id -> due ms)
  ARGV[1] partition key prefix
  ARGV[2] max runs to promote in this call
  ARGV[3] wake channel
  Returns: {promoted count, ms until the next delayed run is due or -1} ]]
--@include common
local pfx = ARGV[1]
local now = now_ms()
local ids = call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local moved = 0
for _, id in ipairs(ids) do
  call('ZREM', KEYS[1], id)
  local rk = pfx .. 'run:' .. id
  local r = call('HMGET', rk, 'queue', 'priority', 'status')
  if r[1] and r[3] == 'delayed' then
    call('HDEL', rk, 'next_retry_at')
    make_ready(pfx, id, r[1], r[2] or '0', now)
    moved = moved + 1
  end
end
if moved > 0 then call('PUBLISH', ARGV[3], pfx) end
local nxt = call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = -1
if #nxt > 0 then wait = math.max(tonumber(nxt[2]) - now, 0) end
return {moved, wait}
