--[[ signal_send: deliver a signal to one run (app.signal, POST
  /v1/runs/{id}/signals). A run waiting in ctx.wait_for_signal(name) for this
  name gets it at once (its wait step is recorded completed with the data and
  the run is queued again); otherwise it is appended to the run's buffer, from
  which each later wait for the name takes the oldest one: in order, each once.
  KEYS[1] the run record (HASH)
  ARGV[1] partition key prefix
  ARGV[2] run id
  ARGV[3] signal name
  ARGV[4] data (JSON)
  ARGV[5] most signals a run's buffer holds
  ARGV[6] wake channel
  Returns: 1 delivered to the waiting run | 0 buffered |
    -2 no such run | -3 run already finished | -9 the run's signal buffer is full ]]
--@include keys
--@include common
--@include statuses
--@include messages
local pfx, id, name, data = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local status = call('HGET', KEYS[1], 'status')
if not status then return -2 end
if TERMINAL[status] then return -3 end
local now = now_ms()
local delivered = message_deliver(pfx, id, 'signal', name, data, 'completed', now)
if not delivered then
  local sk = K.signals(pfx, id)
  if call('LLEN', sk) >= tonumber(ARGV[5]) then return -9 end
  call('RPUSH', sk, name .. '\n' .. data)
  mark_satellite(pfx, id, 'sig')
end
add_event(pfx, id, 'signal', '{"name":' .. cjson.encode(name) .. ',"delivered":' .. tostring(delivered) .. '}', now)
if delivered then WAKE = true end
announce_work(ARGV[6], now, pfx)
return delivered and 1 or 0
