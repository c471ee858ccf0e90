--[[ event_send: deliver an event to the runs of this partition waiting for its
  key, and keep it for TTL ms so a wait that starts later still receives it.
  Each run gets the event once (a waiting run now, another when its wait
  begins; the takers set remembers who had it): its wait step is recorded
  completed with the event data and the run is queued again.
  KEYS[1] waiters of the key in this partition (SET of run ids)
  ARGV[1] partition key prefix
  ARGV[2] event key
  ARGV[3] event data (JSON)
  ARGV[4] TTL ms the event is kept for later waits
  ARGV[5] wake channel
  Returns: number of runs woken ]]
--@include keys
--@include common
--@include messages
local pfx, key, data = ARGV[1], ARGV[2], ARGV[3]
local now = now_ms()
local ttl = tonumber(ARGV[4])
call('SET', K.event(pfx, key), data, 'PX', ttl)
-- a new event: nobody has received it yet (the empty member, no run id, keeps the set while it is kept)
local takers = K.event_takers(pfx, key)
call('DEL', takers)
call('SADD', takers, '')
call('PEXPIRE', takers, ttl)
local woken = 0
for _, id in ipairs(call('SMEMBERS', KEYS[1])) do
  local r = call('HMGET', K.run(pfx, id), 'status', 'wait_kind', 'wait_key', 'wait_step', 'wait_index',
    'wait_started_at')
  if r[1] == 'waiting' and r[2] == 'event' and r[3] == key then
    event_taken_by(pfx, id, key)
    complete_wait_step(pfx, id, r[4], r[5], r[6], data, 'completed', now)
    if resume(pfx, id, now, 'event') then woken = woken + 1 end
  end
end
call('DEL', KEYS[1])
if woken > 0 then WAKE = true end
announce_work(ARGV[5], now, pfx)
return woken
