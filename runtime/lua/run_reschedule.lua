--[[ run_reschedule: change when a run that has not started yet may start.
  A queued or delayed run becomes delayed until the new time, or queued at once
  when that time is not in the future; a paused run keeps the new time for when
  it is resumed. Times are judged by the Redis clock.
  KEYS[1] the run record (HASH)
  ARGV[1] partition key prefix
  ARGV[2] run id
  ARGV[3] start at (epoch ms) or ''
  ARGV[4] delay from now (ms) or '' (used when no start time is given)
  ARGV[5] wake channel
  Returns: 1 rescheduled | -2 no such run | -3 run already finished |
    -7 run is executing or waiting ]]
--@include keys
--@include common
local pfx, id = ARGV[1], ARGV[2]
local now = now_ms()
local due = now
if ARGV[3] ~= '' then due = tonumber(ARGV[3]) else due = now + tonumber(ARGV[4]) end
local r = call('HMGET', KEYS[1], 'status', 'queue', 'priority', 'concurrency_key')
local status = r[1]
if not status then return -2 end
if status == 'executing' or status == 'waiting' then return -7 end
if status == 'paused' then
  if due > now then call('HSET', KEYS[1], 'paused_due', due) else call('HDEL', KEYS[1], 'paused_due') end
  call('HSET', KEYS[1], 'scheduled_at', math.max(due, now), 'updated_at', now)
elseif status == 'queued' or status == 'delayed' then
  call('HSET', KEYS[1], 'scheduled_at', math.max(due, now))
  if due > now then
    ready_remove(pfx, id, r[2], r[4])
    call('HSET', KEYS[1], 'status', 'delayed', 'updated_at', now)
    call('HDEL', KEYS[1], 'next_retry_at')
    add_due(K.delayed(pfx), due, id)
  else
    call('ZREM', K.delayed(pfx), id)
    call('HDEL', KEYS[1], 'next_retry_at')
    if status == 'delayed' then
      make_ready(pfx, id, r[2], r[3] or '0', now)
    end
  end
else
  return -3
end
add_event(pfx, id, 'rescheduled', '{"scheduled_at":' .. math.max(due, now) .. '}', now)
announce_work(ARGV[5], now, pfx)
return 1
