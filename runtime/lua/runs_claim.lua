--[[ runs_claim: lease up to N runnable runs of this partition for one node.
  Queues are visited round-robin from a rotating offset, skipping paused
  queues. Within a queue, runs are grouped by concurrency key and the groups
  are served round-robin (each visit takes one run and moves the group to the
  back), so one key with many runs cannot starve the others; a run with a
  fairness weight w > 1 gives its group w turns in a row (includes/flow.lua).
  Priority then ready order decide within a group; with priority aging
  (an argument below) the oldest run of a lower priority goes first once its aged
  level is higher. A run stays queued (is skipped) when its job is not served
  by this node in the run's version, or when a limit of its job is full:
  concurrency per job, per key or of its shared pool (exact sets of leased
  ids), or a rate limit per job, per rate key or shared by name (GCRA, judged
  by the Redis clock). A run past its TTL ends expired instead of being leased.
  Limits come from the partition's job table (overridable at runtime).
  KEYS[1] partition queue set (SET) - pins the slot
  ARGV[1] partition key prefix
  ARGV[2] node id
  ARGV[3] lease TTL in ms
  ARGV[4] max runs to lease
  ARGV[5] max group visits (candidates) per queue
  ARGV[6] comma-separated queues served by this node
  ARGV[7] comma-separated jobs served, each "job" (any version) or
          "job@v1|v2" (runs of these versions, and unversioned runs)
  ARGV[8] rotation offset (integer)
  ARGV[9] finished-run TTL ms (for runs that expire here)
  ARGV[10] index cap
  ARGV[11] runs this node has received by hand-off from this partition, in total
  ARGV[12] waiter registration TTL in ms (0: the node takes no hand-offs); with
           room left after the claim, the node registers as waiting (see
           includes/claim.lua), else its registration is removed
  ARGV[13] most runs the registration may ask for (the node's share of its free
           slots in this partition, so its registrations in all partitions
           together never promise more runs than it has slots; 0: none)
  ARGV[14] labels the node offers, "k=v,k=v" ('' none): runs that require
          labels it lacks are skipped, runs that prefer them wait their
          preference out first (includes/affinity.lua)
  ARGV[15] priority aging: ms of waiting that count as one priority level (0: none)
  ARGV[16] most runs to lease in this call (default: the max above): a node fills
           its slots in pieces; only when a piece comes back short (the queues ran
           dry) does it register for the rest of that max
  ARGV[17] '1': leave the node's registration as it is (neither register nor
           remove it); hand-offs still count against ARGV[4]. For claims sent
           while another is in flight: which of them Redis runs last is not
           known, so none may decide the registration
  ARGV[18] wake channel (a dependent of a run that expires here may become due:
           includes/common.lua, add_due)
  Runs handed to the node but not yet received count against ARGV[4].
  The registration notes how many runs had been handed to the node when it was
  made: later hand-offs count down its room instead of using it up (see
  includes/claim.lua), so a node that waits need not register again after
  every run it is handed.
  Returns: {now_ms, ms until a rate limit lets a skipped run go (-1 none),
    the room the node registered as waiting for (0: not registered, -1: the
    registration left as it was, ARGV[17]), then the fields of each leased
    run, in the order CLAIM_FIELDS
    (runtime/scripts.py) gives them (includes/claim_reply.lua): id, token,
    attempt, job, input, timeout_ms, ready_at, metadata (JSON or nil), tags
    (JSON or nil), 1 when the run has recorded steps else 0} ]]
--@include keys
--@include common
--@include claim_reply
--@include affinity
--@include flow
--@include claim
local pfx, node, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local want, scan = tonumber(ARGV[4]), tonumber(ARGV[5])
local fin_ttl, cap = tonumber(ARGV[9]), tonumber(ARGV[10])
local received, reg_ttl, reg_most = tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])
local aging_ms = tonumber(ARGV[15] or '0')
local piece = tonumber(ARGV[16] or ARGV[4])
local keep_registration = ARGV[17] == '1'
local now = now_ms()
local handed = 0  -- runs handed to the node so far (a registration's base)
if reg_ttl > 0 then
  handed = tonumber(call('HGET', K.handed(pfx), node) or '0')
  if handed < received then
    -- more received than were ever handed: the count was lost with Redis's data (a server restarted
    -- without it). It goes on from what the node received, or runs in transit would never count again
    call('HSET', K.handed(pfx), node, int_text(received))
    handed = received
  end
  local pending = handed - received
  if pending > 0 then want = want - pending end
end
local runs, retry_in = {}, -1
local take = math.min(want, piece)
if take > 0 then
  runs, retry_in = claim_runs(pfx, node, ttl, take, scan, ARGV[6], ARGV[7], tonumber(ARGV[8]), fin_ttl, cap, now,
    ARGV[14], aging_ms)
end
local room = -1
if reg_ttl > 0 and not keep_registration then
  local took = #runs / CLAIMED_SIZE
  room = 0
  if took < take or take == want then room = math.max(math.min(want - took, reg_most), 0) end
  if room > 0 then
    waiter_register(pfx, node, room, scan, ARGV[6], ARGV[7], ttl, fin_ttl, cap, reg_ttl, ARGV[14], aging_ms, handed)
  else
    call('DEL', K.waiter(pfx, node))
  end
end
announce_work(ARGV[18], now, pfx)
local out = {now, retry_in, room}
for i = 1, #runs do out[i + 3] = runs[i] end
return out
