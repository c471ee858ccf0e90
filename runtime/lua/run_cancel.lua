--[[ run_cancel: cancel one run. A queued or delayed run ends canceled at
  once; an executing run is marked and its node is told on the cancel channel
  (and again at its next lease renewal) to stop the handler, after which the
  run ends canceled.
  KEYS[1] the run record (HASH)
  ARGV[1] partition key prefix
  ARGV[2] run id
  ARGV[3] cancel channel
  ARGV[4] finished-run TTL ms   ARGV[5] index cap
  Returns: 1 canceled | 2 cancellation requested (executing) |
    -2 no such run | -3 run already finished ]]
--@include common
local pfx, id = ARGV[1], ARGV[2]
local now = now_ms()
local r = call('HMGET', KEYS[1], 'status', 'queue')
local status = r[1]
if not status then return -2 end
if status == 'queued' then
  call('ZREM', pfx .. 'ready:' .. r[2], id)
elseif status == 'delayed' then
  call('ZREM', pfx .. 'delayed', id)
elseif status == 'executing' then
  call('HSET', KEYS[1], 'cancel_requested', '1', 'updated_at', now)
  call('PUBLISH', ARGV[3], id)
  return 2
else
  return -3
end
call('HSET', KEYS[1], 'error', cjson.encode({message = 'canceled', type = 'Canceled'}))
make_terminal(pfx, id, 'canceled', now, tonumber(ARGV[4]), tonumber(ARGV[5]))
return 1
