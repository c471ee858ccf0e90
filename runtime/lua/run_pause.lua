--[[ run_pause: pause a run so that it is not leased until run_resume.
  A queued or delayed run leaves its ready or delayed set for the paused index
  at once (a delayed run keeps its due time). An executing run is flagged: its
  handler parks it at the next step boundary (after the next step it records).
  A waiting run keeps waiting (timers, events and children still count) and is
  parked instead of queued when its wait ends.
  KEYS[1] the run record (HASH)
  ARGV[1] partition key prefix
  ARGV[2] run id
  Returns: 1 paused | 2 pause requested (executing or waiting) | 0 already paused |
    -2 no such run | -3 run already finished ]]
--@include keys
--@include common
local pfx, id = ARGV[1], ARGV[2]
local now = now_ms()
local r = call('HMGET', KEYS[1], 'status', 'queue', 'concurrency_key')
local status = r[1]
if not status then return -2 end
if status == 'paused' then return 0 end
if status == 'queued' then
  ready_remove(pfx, id, r[2], r[3])
  park_paused(pfx, id, 'queued', '', now, 'requested')
  return 1
elseif status == 'delayed' then
  local due = call('ZSCORE', K.delayed(pfx), id)
  call('ZREM', K.delayed(pfx), id)
  park_paused(pfx, id, 'delayed', due or '', now, 'requested')
  return 1
elseif status == 'executing' or status == 'waiting' then
  call('HSET', KEYS[1], 'pause_requested', '1', 'updated_at', now)
  add_event(pfx, id, 'pause_requested', '{"status":' .. cjson.encode(status) .. '}', now)
  return 2
end
return -3
