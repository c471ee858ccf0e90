--[[ message_take: a signal or token wait that begins when what it waits for
  already arrived (a buffered signal, a settled token) takes it at once, in the
  attempt that is running: the wait step is recorded (completed with the data,
  or timed_out for an expired token) and the handler goes on without ending its
  attempt. Fenced by the lease token.
  KEYS[1] the run record (HASH)
  ARGV[1] partition key prefix
  ARGV[2] run id
  ARGV[3] lease token
  ARGV[4] kind: signal | token
  ARGV[5] the signal name or the token id
  ARGV[6] wait step name
  ARGV[7] wait step index
  Returns: {step status, data (JSON), 1 when a pause of the run was requested else 0} |
    0 nothing arrived yet | -1 lease token no longer matches ]]
--@include keys
--@include common
--@include messages
local pfx, id = ARGV[1], ARGV[2]
local r = call('HMGET', KEYS[1], 'lease_token', 'status', 'pause_requested')
if r[1] ~= ARGV[3] or r[2] ~= 'executing' then return -1 end
local now = now_ms()
local status, data = message_arrived(pfx, id, ARGV[4], ARGV[5], now)
if not data then return 0 end
complete_wait_step(pfx, id, ARGV[6], ARGV[7], now, data, status, now)
call('HSET', KEYS[1], 'current_step_index', ARGV[7], 'updated_at', now)
return {status, data, r[3] == '1' and 1 or 0}
