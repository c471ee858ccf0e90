--[[ runs_finish: record the outcome of many attempts at once, fenced.
  Each outcome is written only if the run still holds the caller's lease token
  and is executing; otherwise it is rejected and nothing is written (the lease
  expired and another node may own the run). Accepted outcomes go through the
  same settle() as reaped leases: completed, canceled, retry after backoff,
  dead letter, or given back uncharged (released).
  KEYS[1] partition leased set (ZSET) - pins the slot
  ARGV[1] partition key prefix
  ARGV[2] wake channel
  ARGV[3] finished-run TTL ms   ARGV[4] dead-letter TTL ms   ARGV[5] index cap
  ARGV[6..] 1 argument per outcome: a JSON array of its 7 fields: id, token,
    outcome, output (JSON), error (JSON or ''), permanent ('1' or '0'),
    jitter random in [0,1); a completed attempt's is just id, token, output (JSON)
  Returns: flat list id, new status per outcome; status is the error code
    -1 when the lease token no longer matches (fencing rejection). An outcome
    sent again after its reply was lost gets the status the first one set
    (settle: settled_before), not a rejection. ]]
--@include keys
--@include common
--@include statuses
--@include messages
--@include settle
local pfx, channel = ARGV[1], ARGV[2]
local ttl_ms, dlq_ttl_ms, cap = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local now = now_ms()
local out = {}
local wake = false
local later = later_work()  -- index writes and trims made once, after every outcome
for a = 6, #ARGV do
  -- one argument per outcome (a JSON array): cheaper for the client to send, and cjson splits
  -- it faster than Lua's string functions would
  local F = cjson.decode(ARGV[a])
  local id, token = F[1], F[2]
  -- one read serves the fencing check and settle()
  local r = read_all(pfx, id)
  out[#out + 1] = id
  if not held_lease(r.status, r.lease_node, r.attempt, token) then
    out[#out + 1] = settled_before(r, token, F[4] == nil and 'completed' or F[3]) or -1
  else
    -- waking other nodes only matters when a queued run may now fit a limit: when this one held
    -- a slot in a lease set (its cc names them, kept in line with the limits by limits_apply; a
    -- record without one, leased before cc existed, counts as holding one). Rate limits are not
    -- freed by a finish: the claims that skip for them come back when the rate lets a run go
    if r.cc ~= '' then wake = true end
    local st
    if F[4] == nil then  -- (completed: the short form, a third of the JSON to split)
      st = settle(pfx, id, 'completed', F[3], '', '0', now, 0, ttl_ms, dlq_ttl_ms, cap, r, later)
    else
      st = settle(pfx, id, F[3], F[4], F[5], F[6], now, F[7], ttl_ms, dlq_ttl_ms, cap, r, later)
    end
    if st == 'queued' then wake = true end
    out[#out + 1] = st
  end
end
finish_later(pfx, later, now, cap)
-- a finished run may free a concurrency slot that queued runs wait for
if wake then WAKE = true end
announce_work(channel, now, pfx)
return out
