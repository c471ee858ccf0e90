--[[ run_restart: start a run over as a new run with the same input and
  options (linked by restart_of / restarted_as). A live source is canceled
  first, with its unfinished children: at once when queued, delayed, waiting
  or paused; an executing one is told to stop (cancel channel). A finished
  source keeps its record. A dependent restarted while it waits for parents
  (depends_on) makes a copy that waits for the same ones.
  KEYS[1] the source run record (HASH)
  ARGV[1] partition key prefix
  ARGV[2] source run id
  ARGV[3] new run id (routed to this partition by the caller)
  ARGV[4] cancel channel
  ARGV[5] wake channel
  ARGV[6] finished-run TTL ms   ARGV[7] index cap
  Returns: 1 created (source was finished) | 2 created, source canceled |
    3 created, cancellation of the executing source requested |
    -2 no such run | -5 new id already exists ]]
--@include keys
--@include common
--@include cancel
--@include copy
local pfx, id, new_id = ARGV[1], ARGV[2], ARGV[3]
local now = now_ms()
if call('EXISTS', KEYS[1]) == 0 then return -2 end
if call('EXISTS', K.run(pfx, new_id)) == 1 then return -5 end
local was = call('HMGET', KEYS[1], 'status', 'wait_kind')
local canceled = cancel_tree(pfx, id, ARGV[4], now, tonumber(ARGV[6]), tonumber(ARGV[7]))
copy_run(pfx, KEYS[1], new_id, now, 'restart', 'restart_of')
-- a dependent restarted while its parents run waits for them again (includes/deps.lua)
if was[1] == 'waiting' and was[2] == 'parents' then deps_rewait(pfx, id, new_id, now) end
call('HSET', KEYS[1], 'restarted_as', new_id)
WAKE = true
announce_work(ARGV[5], now, pfx)
if canceled == 1 then return 2 elseif canceled == 2 then return 3 end
return 1
