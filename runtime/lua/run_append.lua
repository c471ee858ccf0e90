--[[ run_append: fenced append to one of a run's own streams: 'rec' (usage,
  tool-call and structured-output records) or 'chunks' (what ctx.stream
  produced). Capped; the stream expires with the run. An append sent again
  with the same number is answered with the first one's reply, not applied
  twice (common: written_before).
  KEYS[1] the run record (HASH)
  ARGV[1] partition key prefix
  ARGV[2] run id
  ARGV[3] lease token
  ARGV[4] stream: 'rec' or 'chunks'
  ARGV[5] approximate cap of the stream (entries)
  ARGV[6] the append's number for this lease and stream, or '' (not tracked)
  ARGV[7..] pairs of entry type, entry data (JSON)
  Returns: {count appended, last entry id} | -1 lease token no longer matches ]]
--@include keys
--@include common
local pfx, id, token, kind, number = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[6]
if kind ~= 'rec' and kind ~= 'chunks' then return redis.error_reply('stream must be rec or chunks') end
local leased, mark = read_if_leased(KEYS[1], token, 'w_' .. kind)
if not leased then return -1 end
local before = written_before(mark, token, number)
if before then return pair_reply(before) end
local now = now_ms()
local key = SATELLITES[kind](pfx, id)
mark_satellite(pfx, id, kind)
local last = ''
local n = 0
for i = 7, #ARGV, 2 do
  last = call('XADD', key, 'MAXLEN', '~', tonumber(ARGV[5]), '*', 'type', ARGV[i], 'data', ARGV[i + 1], 'ts', now)
  n = n + 1
end
note_written(KEYS[1], kind, token, number, pair_noted(n, last))
return {n, last}
