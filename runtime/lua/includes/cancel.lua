--[[ cancel: cancel one run and, when that worked, its unfinished children (and
  theirs). Shared by run_cancel and run_restart. A queued, delayed, waiting or
  paused run ends canceled at once; an executing run is marked and its node is
  told on the cancel channel (and again at its next lease renewal). ]]

-- returns 1 canceled, 2 requested (executing), -2 missing, -3 finished
local function cancel_one(pfx, id, channel, now, ttl_ms, cap)
  local rk = K.run(pfx, id)
  local r = call('HMGET', rk, 'status', 'queue', 'wait_kind', 'wait_key', 'concurrency_key')
  local status = r[1]
  if not status then return -2 end
  if status == 'queued' then
    ready_remove(pfx, id, r[2], r[5])
  elseif status == 'delayed' then
    call('ZREM', K.delayed(pfx), id)
  elseif status == 'waiting' then
    call('ZREM', K.waiting(pfx), id)
    if r[3] == 'event' and r[4] then call('SREM', K.event_waiters(pfx, r[4]), id) end
  elseif status == 'paused' then
    call('ZREM', K.paused(pfx), id)
  elseif status == 'executing' then
    call('HSET', rk, 'cancel_requested', '1', 'updated_at', now)
    call('PUBLISH', channel, id)
    return 2
  else
    return -3
  end
  call('HSET', rk, 'error', cjson.encode({message = 'canceled', type = 'Canceled'}))
  make_terminal(pfx, id, 'canceled', now, ttl_ms, cap)
  return 1
end

local function cancel_tree(pfx, id, channel, now, ttl_ms, cap)
  local result = cancel_one(pfx, id, channel, now, ttl_ms, cap)
  if result > 0 then
    local stack = {id}
    while #stack > 0 do
      local parent = table.remove(stack)
      for _, child in ipairs(call('SMEMBERS', K.children(pfx, parent))) do
        if cancel_one(pfx, child, channel, now, ttl_ms, cap) > 0 then stack[#stack + 1] = child end
      end
    end
  end
  return result
end
