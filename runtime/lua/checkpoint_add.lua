--[[ checkpoint_add: append a sequenced snapshot of handler state, fenced.
  The next attempt (or a resumed run) reads the latest one. A checkpoint sent
  again with the same number is answered with the first one's sequence, not
  stored twice (common: written_before).
  KEYS[1] the run record (HASH)
  ARGV[1] partition key prefix
  ARGV[2] run id
  ARGV[3] lease token
  ARGV[4] source (e.g. "handler")
  ARGV[5] state (JSON)
  ARGV[6] the checkpoint's number for this lease (channel 'cp'), or '' (not tracked)
  ARGV[7] its place in the handler, "<steps begun>.<nth checkpoint there>" (kept as
    field at, for a replay to find it: runtime/run_checkpoints.py), or '' (none)
  Returns: {sequence, stream entry id} | -1 lease token no longer matches ]]
--@include keys
--@include common
local pfx, id, token, number = ARGV[1], ARGV[2], ARGV[3], ARGV[6]
local leased, mark = read_if_leased(KEYS[1], token, 'w_cp')
if not leased then return -1 end
local before = written_before(mark, token, number)
if before then return pair_reply(before) end
local now = now_ms()
local seq = call('HINCRBY', KEYS[1], 'checkpoint_seq', 1)
local entry = {'sequence', seq, 'source', ARGV[4], 'state', ARGV[5], 'created_at', now}
if ARGV[7] ~= '' then entry[#entry + 1] = 'at'; entry[#entry + 1] = ARGV[7] end
local eid = call('XADD', K.checkpoints(pfx, id), 'MAXLEN', '~', 100, '*', unpack(entry))
mark_satellite(pfx, id, 'cp')
add_event(pfx, id, 'checkpoint', '{"sequence":' .. seq .. '}', now)
note_written(KEYS[1], 'cp', token, number, pair_noted(seq, eid))
return {seq, eid}
