--[[ run_cancel: cancel one run. A queued or delayed run ends canceled at
  once; an executing run is marked and its node is told on the cancel channel
  (and again at its next lease renewal) to stop the handler, after which the
  run ends canceled. A waiting run ends canceled at once. The run's unfinished
  children (and theirs) are canceled the same way.
  KEYS[1] the run record (HASH)
  ARGV[1] partition key prefix
  ARGV[2] run id
  ARGV[3] cancel channel
  ARGV[4] finished-run TTL ms   ARGV[5] index cap
  Returns: 1 canceled | 2 cancellation requested (executing) |
    -2 no such run | -3 run already finished ]]
--@include common
local pfx = ARGV[1]
local now = now_ms()
local ttl_ms, cap = tonumber(ARGV[4]), tonumber(ARGV[5])

-- returns 1 canceled, 2 requested, -2 missing, -3 finished
local function cancel_one(id)
  local rk = pfx .. 'run:' .. id
  local r = call('HMGET', rk, 'status', 'queue', 'wait_kind', 'wait_key')
  local status = r[1]
  if not status then return -2 end
  if status == 'queued' then
    call('ZREM', pfx .. 'ready:' .. r[2], id)
  elseif status == 'delayed' then
    call('ZREM', pfx .. 'delayed', id)
  elseif status == 'waiting' then
    call('ZREM', pfx .. 'waiting', id)
    if r[3] == 'event' and r[4] then call('SREM', pfx .. 'evw:' .. r[4], id) end
  elseif status == 'executing' then
    call('HSET', rk, 'cancel_requested', '1', 'updated_at', now)
    call('PUBLISH', ARGV[3], id)
    return 2
  else
    return -3
  end
  call('HSET', rk, 'error', cjson.encode({message = 'canceled', type = 'Canceled'}))
  make_terminal(pfx, id, 'canceled', now, ttl_ms, cap)
  return 1
end

local result = cancel_one(ARGV[2])
if result > 0 then
  local stack = {ARGV[2]}
  while #stack > 0 do
    local parent = table.remove(stack)
    for _, child in ipairs(call('SMEMBERS', pfx .. 'children:' .. parent)) do
      if cancel_one(child) > 0 then stack[#stack + 1] = child end
    end
  end
end
return result
