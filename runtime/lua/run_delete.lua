--[[ run_delete: delete a finished run and everything recorded about it: the
  record, its input, timeline, steps, checkpoints, usage/tool-call/output
  records, streamed chunks and children set; its places in the status and
  project indices; and its idempotency key while that still maps to it (so
  the key makes a new run next time, not an answer naming a deleted one). A
  live run must be canceled first. Its children are runs of their own and
  keep their own retention.
  KEYS[1] the run record (HASH)
  ARGV[1] partition key prefix
  ARGV[2] run id
  Returns: 1 deleted | -2 no such run | -4 not finished ]]
--@include keys
--@include common
--@include statuses
local pfx, id = ARGV[1], ARGV[2]
local r = call('HMGET', KEYS[1], 'status', 'job', 'idempotency_key', unpack(PROJECT_FIELDS))
if not r[1] then return -2 end
if not TERMINAL[r[1]] then return -4 end
call('ZREM', K.status(pfx, r[1]), id)
project_unlisted(pfx, id, {r[4], r[5], r[6], r[7]})
if r[2] and r[3] and r[3] ~= '' then
  local ik = K.idempotency(pfx, r[2], r[3])
  if call('GET', ik) == id then call('DEL', ik) end
end
-- every satellite, marked or not: deleting a key that does not exist costs nothing
local gone = {KEYS[1], K.input(pfx, id)}
for _, name in ipairs(SATELLITE_NAMES) do gone[#gone + 1] = SATELLITES[name](pfx, id) end
call('DEL', unpack(gone))
return 1
