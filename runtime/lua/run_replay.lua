--[[ run_replay: start a new run with the input and options of a finished
  one (typically from the dead letter queue). The old run keeps its terminal
  record and records replayed_as (its latest replay); the new one links back to
  it with replay_of. In dead-letter mode the source must be dead-lettered and
  not replayed before (in either mode), so a dead-lettered run is replayed from
  the queue at most once.
  KEYS[1] the source run record (HASH)
  ARGV[1] partition key prefix
  ARGV[2] new run id (routed to this partition by the caller)
  ARGV[3] wake channel
  ARGV[4] mode: '' (any finished run) or 'dead_letter'
  Returns: 1 created | -2 no such run | -4 run not finished yet |
    -5 new id already exists | -7 not dead-lettered (dead-letter mode) |
    -8 already replayed (dead-letter mode) ]]
--@include keys
--@include common
--@include statuses
--@include copy
local pfx, new_id = ARGV[1], ARGV[2]
local now = now_ms()
local r = call('HMGET', KEYS[1], 'status', 'replayed_as')
local status = r[1]
if not status then return -2 end
if LIVE[status] then
  return -4
end
if ARGV[4] == 'dead_letter' then
  if status ~= 'dead_letter' then return -7 end
  if r[2] then return -8 end
end
if call('EXISTS', K.run(pfx, new_id)) == 1 then return -5 end
copy_run(pfx, KEYS[1], new_id, now, 'replay', 'replay_of')
call('HSET', KEYS[1], 'replayed_as', new_id)
WAKE = true
announce_work(ARGV[3], now, pfx)
return 1
