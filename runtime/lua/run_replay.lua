--[[ run_replay: start a new run with the input and options of a finished
  one (typically from the dead letter queue). The old run keeps its terminal
  record; the new one links back to it with replay_of.
  KEYS[1] the source run record (HASH)
  ARGV[1] partition key prefix
  ARGV[2] new run id (routed to this partition by the caller)
  ARGV[3] wake channel
  Returns: 1 created | -2 no such run | -4 run not finished yet |
    -5 new id already exists ]]
--@include common
local pfx, new_id = ARGV[1], ARGV[2]
local now = now_ms()
local status = call('HGET', KEYS[1], 'status')
if not status then return -2 end
if status == 'queued' or status == 'delayed' or status == 'executing' then return -4 end
local nk = pfx .. 'run:' .. new_id
if call('EXISTS', nk) == 1 then return -5 end
local copy = {'job', 'queue', 'input', 'priority', 'max_attempts', 'timeout_ms', 'backoff',
  'labels', 'tags', 'metadata', 'concurrency_key', 'version', 'project'}
local vals = call('HMGET', KEYS[1], unpack(copy))
for i, k in ipairs(copy) do if vals[i] then call('HSET', nk, k, vals[i]) end end
call('HSET', nk, 'id', new_id, 'created_at', now, 'scheduled_at', now, 'attempt', 0,
  'charged', 0, 'source', 'replay', 'replay_of', call('HGET', KEYS[1], 'id'))
call('ZADD', pfx .. 'runs:' .. (vals[13] or 'default'), now, new_id)
make_ready(pfx, new_id, vals[2], vals[4] or '0', now)
call('PUBLISH', ARGV[3], pfx)
return 1
