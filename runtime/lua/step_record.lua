--[[ step_record: store one step's record, fenced by the lease token. A step
  that completed is final: recording it again is refused, which is how a
  duplicate step name within one run is caught. The very same record again is
  this write sent twice (a reply lost to a dropped connection, the call tried
  again): it is answered as written, and nothing is written twice.
  KEYS[1] the run record (HASH)
  ARGV[1] partition key prefix
  ARGV[2] run id
  ARGV[3] lease token
  ARGV[4] step name
  ARGV[5] step index (position in the handler's sequence of steps)
  ARGV[6] the step record (JSON, see runtime/steps.py)
  ARGV[7] '1' when the record is a completed step
  Returns: 1 written | 2 written, and a pause of the run was requested |
    -1 lease token no longer matches |
    -6 a completed step with this name already exists ]]
--@include keys
--@include common
local pfx, id, token, name = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local leased, pause = read_if_leased(KEYS[1], token, 'pause_requested')
if not leased then return -1 end
local sk = K.steps(pfx, id)
local existing = call('HGET', sk, name)
if existing and string.find(existing, '"status":"completed"', 1, true) then
  if existing ~= ARGV[6] then return -6 end
  if pause == '1' then return 2 end
  return 1
end
local now = now_ms()
call('HSET', sk, name, ARGV[6])
mark_satellite(pfx, id, 'steps')
call('HSET', KEYS[1], 'current_step_index', ARGV[5], 'updated_at', now)
if ARGV[7] == '1' then call('HINCRBY', KEYS[1], 'completed_step_count', 1) end
add_event(pfx, id, 'step', ARGV[6], now)
if pause == '1' then return 2 end
return 1
