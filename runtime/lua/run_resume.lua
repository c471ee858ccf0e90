--[[ run_resume: put a paused run back where it can be leased: queued now, or
  delayed when it was paused as a delayed run whose time has not come. For an
  executing or waiting run with a pending pause request, the request is
  withdrawn.
  KEYS[1] the run record (HASH)
  ARGV[1] partition key prefix
  ARGV[2] run id
  ARGV[3] wake channel
  Returns: 1 resumed | 2 pending pause request withdrawn | -2 no such run |
    -7 run is not paused ]]
--@include keys
--@include common
local pfx, id = ARGV[1], ARGV[2]
local now = now_ms()
local r = call('HMGET', KEYS[1], 'status', 'queue', 'priority', 'paused_due', 'pause_requested')
local status = r[1]
if not status then return -2 end
if status ~= 'paused' then
  if r[5] == '1' and (status == 'executing' or status == 'waiting') then
    call('HDEL', KEYS[1], 'pause_requested')
    add_event(pfx, id, 'pause_withdrawn', '{"status":' .. cjson.encode(status) .. '}', now)
    return 2
  end
  return -7
end
call('ZREM', K.paused(pfx), id)
call('HDEL', KEYS[1], 'paused_at', 'paused_from', 'paused_due', 'pause_requested')
local due = tonumber(r[4] or '')
if due and due > now then
  call('HSET', KEYS[1], 'status', 'delayed', 'updated_at', now)
  add_due(K.delayed(pfx), due, id)
  add_event(pfx, id, 'status', '{"status":"delayed","reason":"resumed"}', now)
else
  make_ready(pfx, id, r[2], r[3] or '0', now)
  add_event(pfx, id, 'status', '{"status":"queued","reason":"resumed"}', now)
end
announce_work(ARGV[3], now, pfx)
return 1
