--[[ message_take: an event, signal or token wait that begins when what it waits
  for already arrived (a kept event, a buffered signal, a settled token) takes
  it at once, in the attempt that is running: the wait step is recorded
  (completed with the data, or timed_out for an expired token) and the handler
  goes on without ending its attempt. Fenced by the lease token.
  KEYS[1] the run record (HASH)
  ARGV[1] partition key prefix
  ARGV[2] run id
  ARGV[3] lease token
  ARGV[4] kind: event | signal | token
  ARGV[5] the event key, the signal name or the token id
  ARGV[6] wait step name
  ARGV[7] wait step index
  ARGV[8] wait step position (JSON list, runtime/step_positions.py)
  A take that finds its wait step already completed is this call sent twice (a reply
  lost to a dropped connection, the call tried again: the handler reaches the take
  only while the step is not recorded): it answers what the first one recorded.
  Returns: {step status, data (JSON), 1 when a pause of the run was requested else 0} |
    0 nothing arrived yet | -1 lease token no longer matches ]]
--@include keys
--@include common
--@include messages
local pfx, id = ARGV[1], ARGV[2]
local leased, pause_requested = read_if_leased(KEYS[1], ARGV[3], 'pause_requested')
if not leased then return -1 end
local pause = pause_requested == '1' and 1 or 0
local done = call('HGET', K.steps(pfx, id), ARGV[6])
if done then
  -- complete_wait_step's record: '{"name":..,"index":..,"status":S,"output":' .. data .. ',"error":null,..'
  -- (the name is JSON-encoded, so the first ',"output":' and the last ',"error":null,' are the record's own)
  local st = string.match(done, ',"status":"([%a_]+)","output":')
  if st and st ~= 'waiting' then
    local _, from = string.find(done, ',"output":', 1, true)
    local to, at = nil, 1
    while true do
      local found = string.find(done, ',"error":null,"started_at":', at, true)
      if not found then break end
      to, at = found, found + 1
    end
    return {st, string.sub(done, from + 1, to - 1), pause}
  end
end
local now = now_ms()
local status, data = message_arrived(pfx, id, ARGV[4], ARGV[5], now)
if not data then return 0 end
complete_wait_step(pfx, id, ARGV[6], ARGV[7], now, data, status, now, ARGV[8])
call('HSET', KEYS[1], 'current_step_index', ARGV[7], 'updated_at', now)
return {status, data, pause}
