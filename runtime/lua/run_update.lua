--[[ run_update: fenced writes a handler makes while it runs: record fields
  (progress, metadata, tags, step counters) and timeline events (logs,
  progress). Nothing is written unless the caller still holds the lease; a
  write sent again with the same number is answered as written, not applied
  twice (common: written_before).
  KEYS[1] the run record (HASH)
  ARGV[1] partition key prefix
  ARGV[2] run id
  ARGV[3] lease token
  ARGV[4] the write's number for this lease (channel 'u'), or '' (not tracked)
  ARGV[5] fields to set: JSON object of string values, or ''
  ARGV[6..] pairs of event type, event data (JSON)
  Returns: 1 written | -1 lease token no longer matches ]]
--@include keys
--@include common
local pfx, id, token, number = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local leased, mark = read_if_leased(KEYS[1], token, 'w_u')
if not leased then return -1 end
if written_before(mark, token, number) then return 1 end
local now = now_ms()
if ARGV[5] ~= '' then
  for k, v in pairs(cjson.decode(ARGV[5])) do call('HSET', KEYS[1], k, v) end
end
call('HSET', KEYS[1], 'updated_at', now, unpack(written_mark('u', token, number, '')))
for i = 6, #ARGV, 2 do add_event(pfx, id, ARGV[i], ARGV[i + 1], now) end
return 1
