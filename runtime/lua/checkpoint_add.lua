--[[ checkpoint_add: append a sequenced snapshot of handler state, fenced.
  The next attempt (or a resumed run) reads the latest one.
  KEYS[1] the run record (HASH)
  ARGV[1] partition key prefix
  ARGV[2] run id
  ARGV[3] lease token
  ARGV[4] source (e.g. "handler")
  ARGV[5] state (JSON)
  Returns: {sequence, stream entry id} | -1 lease token no longer matches ]]
--@include keys
--@include common
local pfx, id, token = ARGV[1], ARGV[2], ARGV[3]
local r = call('HMGET', KEYS[1], 'lease_token', 'status')
if r[1] ~= token or r[2] ~= 'executing' then return -1 end
local now = now_ms()
local seq = call('HINCRBY', KEYS[1], 'checkpoint_seq', 1)
local eid = call('XADD', K.checkpoints(pfx, id), 'MAXLEN', '~', 100, '*', 'sequence', seq, 'source', ARGV[4],
  'state', ARGV[5], 'created_at', now)
mark_satellite(pfx, id, 'cp')
add_event(pfx, id, 'checkpoint', '{"sequence":' .. seq .. '}', now)
return {seq, eid}
