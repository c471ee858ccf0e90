--[[ run_debug: turn a run's debug mode on or off (a flag on the record that
  handlers read with ctx.debug_enabled(); recorded on the timeline).
  KEYS[1] the run record (HASH)
  ARGV[1] partition key prefix
  ARGV[2] run id
  ARGV[3] '1' on | '0' off
  Returns: 1 set | -2 no such run ]]
--@include keys
--@include common
local pfx, id = ARGV[1], ARGV[2]
if call('EXISTS', KEYS[1]) == 0 then return -2 end
local now = now_ms()
call('HSET', KEYS[1], 'debug_mode', ARGV[3], 'updated_at', now)
add_event(pfx, id, 'debug_mode', '{"debug_mode":' .. (ARGV[3] == '1' and 'true' or 'false') .. '}', now)
return 1
