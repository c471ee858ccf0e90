--[[ run_update: fenced writes a handler makes while it runs: record fields
  (progress, metadata, tags, step counters) and timeline events (logs,
  progress). Nothing is written unless the caller still holds the lease.
  KEYS[1] the run record (HASH)
  ARGV[1] partition key prefix
  ARGV[2] run id
  ARGV[3] lease token
  ARGV[4] fields to set: JSON object of string values, or ''
  ARGV[5..] pairs of event type, event data (JSON)
  Returns: 1 written | -1 lease token no longer matches ]]
--@include keys
--@include common
local pfx, id, token = ARGV[1], ARGV[2], ARGV[3]
local r = call('HMGET', KEYS[1], 'lease_token', 'status')
if r[1] ~= token or r[2] ~= 'executing' then return -1 end
local now = now_ms()
if ARGV[4] ~= '' then
  for k, v in pairs(cjson.decode(ARGV[4])) do call('HSET', KEYS[1], k, v) end
end
call('HSET', KEYS[1], 'updated_at', now)
for i = 5, #ARGV, 2 do add_event(pfx, id, ARGV[i], ARGV[i + 1], now) end
return 1
