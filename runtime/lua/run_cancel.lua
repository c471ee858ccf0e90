--[[ run_cancel: cancel one run. A queued, delayed, waiting or paused run ends
  canceled at once; an executing run is marked and its node is told on the
  cancel channel (and again at its next lease renewal) to stop the handler,
  after which the run ends canceled. The run's unfinished children (and
  theirs) are canceled the same way.
  KEYS[1] the run record (HASH)
  ARGV[1] partition key prefix
  ARGV[2] run id
  ARGV[3] cancel channel
  ARGV[4] finished-run TTL ms   ARGV[5] index cap
  ARGV[6] wake channel (a dependent of a canceled run may become due: includes/common.lua, add_due)
  Returns: 1 canceled | 2 cancellation requested (executing) |
    -2 no such run | -3 run already finished ]]
--@include keys
--@include common
--@include cancel
local now = now_ms()
local status = cancel_tree(ARGV[1], ARGV[2], ARGV[3], now, tonumber(ARGV[4]), tonumber(ARGV[5]))
announce_work(ARGV[6], now, ARGV[1])
return status
