--[[ state_set: store the state a handler publishes with ctx.set_state, fenced
  by the lease token; app.query and GET /v1/runs/{id}/query read the latest.
  KEYS[1] the run record (HASH)
  ARGV[1] partition key prefix
  ARGV[2] run id
  ARGV[3] lease token
  ARGV[4] the state (JSON)
  Returns: the time stored (ms) | -1 lease token no longer matches ]]
--@include keys
--@include common
local pfx, id = ARGV[1], ARGV[2]
if not read_if_leased(KEYS[1], ARGV[3]) then return -1 end
local now = now_ms()
call('SET', K.query_state(pfx, id), '{"updated_at":' .. now .. ',"state":' .. ARGV[4] .. '}')
mark_satellite(pfx, id, 'state')
return now
