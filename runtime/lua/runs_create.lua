--[[ runs_create: create runs in one queue partition, idempotently.
  A run whose id already exists is not touched (this makes intake idempotent on
  the stream entry id, which derives the run id); a run whose idempotency key
  maps to a live run returns that run instead. Due runs go to their queue's
  ready set, future ones to the delayed set. All keys share the partition's
  hash tag; they are built from the prefix in ARGV[1].
  KEYS[1] partition queue set (SET) - pins the slot
  ARGV[1] partition key prefix, e.g. "{baton:p0}:"
  ARGV[2] wake channel (PUBLISH when runs became ready, and a due notice when a run became the first
    due of the delayed or TTL set: includes/common.lua, announce_work)
  ARGV[3] the calling node's id when the caller can start runs itself (a node's
    intake), else ''
  ARGV[4..] 2 arguments per run: a JSON array of the run's fields (RunSpec in
    runtime/submission.py), read by name through includes/run_spec.lua, which is
    generated from RunSpec: labels, tags, metadata, backoff and extra are
    JSON ('' when absent), as are delay_ms, run_at_ms and ttl_ms; the debounce
    spec is "mode,window_ms,max_ms". The array may stop before its last fields:
    the missing ones are empty (''). Its input field is ignored: the run's input
    (JSON) is the next argument (runtime/scripts.py create_args)
  Debounce: runs of one job with one debounce key coalesce. "trailing": the
  first creates a delayed run due after the window; each later one within it
  replaces the input and pushes the start back by the window, never past
  first + max_ms (0 = no cap). "leading": the first runs at once; later ones
  within the window from the first are absorbed.
  Runs that became ready go first to nodes registered as waiting for their
  queue (leased at once and pushed to the node's hand-off list, see
  includes/claim.lua); the wake channel is published only if runs remain ready.
  A due run without a concurrency key, of a job without limits, in a queue
  with no ready runs, is leased to a waiting node that serves it without ever
  entering the ready set. The calling node (if any) is preferred when it is
  waiting: the runs leased to it come back in the reply instead of through its
  hand-off list, so a run submitted through the stream starts without a hop.
  depends_on (includes/deps.lua): a run whose parents are all finished counts
  them at once; one with a parent pending is created waiting (wait_kind
  'parents') and queued by the call that finishes its last parent.
  max_queued (includes/admission.lua): a run past a job's or queue's cap is
  not created.
  Returns: {results, claimed, now ms, room}: results the flat list id, code per run;
    code 1 created | 0 id existed | 2 idempotency key matched a live run (id is
    that run's) | 3 absorbed by a debounced run (id is that run's) | -21 a parent
    does not exist (id is that parent's) | -22 over a max_queued cap (id is
    "j:<job>=<cap>" or "q:<queue>=<cap>"); claimed the runs leased to the calling
    node (CLAIMED_SIZE fields each, as runs_claim); room what its registration as
    waiting has left after them (-1: used up, or none leased) ]]
--@include keys
--@include statuses
--@include common
--@include run_spec
--@include claim_reply
--@include affinity
--@include flow
--@include claim
local pfx, channel, caller = ARGV[1], ARGV[2], ARGV[3]
local now = now_ms()
local now_text = int_text(now)  -- written many times per call (common.lua int_text)
local out = {}
local woke = false
-- one INCRBY numbers the rest of the batch when the first run becomes ready
-- (runs handed straight to a node need no number); groups seen once need no second check
local seq = nil
local groups_seen = {}
-- entries of runs after the first of their group (ready set -> score, id pairs), added with
-- one ZADD per ready set at the end
local entering = {}
local leases = new_leases()  -- leased index entries of runs handed straight to a node (add_leases at the end)
local touched = {}  -- queues that got ready runs
local direct = {}   -- queue -> waiting node state (or false) for direct hand-off
local waiting = {}  -- node -> its state (room left, served jobs, runs leased to it)
local unlimited = {}  -- job -> true when it has no limits (checked once per job)
local admission = {}  -- job and queue -> their max_queued caps (checked once per pair)
local rec = nil  -- the record of the run being created, as HSET arguments (put, put_set add to it)
local function put(k, v) rec[#rec + 1] = k; rec[#rec + 1] = v end
local function put_set(k, v) if v ~= '' then put(k, v) end end
local function no_limits(job)
  local u = unlimited[job]
  if u == nil then
    local l = job_limits(pfx, job)
    u = l[1] == 0 and l[2] == 0 and l[3] == 0 and l[5] == 0 and not (l.pool or l.srate)
    unlimited[job] = u
  end
  return u
end
for a = 4, #ARGV, 2 do
  -- a JSON array of the run's fields (packing 26 arguments per run cost the client more than the
  -- whole script costs Redis), then its input (see the header)
  local F = setmetatable(cjson.decode(ARGV[a]), S_EMPTY)
  F[S.input_json] = ARGV[a + 1]
  local id, job, queue, input = F[S.id], F[S.job], F[S.queue], F[S.input_json]
  local priority, delay_ms, run_at = F[S.priority], F[S.delay_ms], F[S.run_at_ms]
  local ckey, ikey, ittl = F[S.concurrency_key], F[S.idempotency_key], F[S.idempotency_ttl_ms]
  local rk = K.run(pfx, id)
  local code = 1
  local ik = nil
  if ikey ~= '' then
    ik = K.idempotency(pfx, job, ikey)
    local existing = call('GET', ik)
    if existing and call('EXISTS', K.run(pfx, existing)) == 1 then
      id, code = existing, 2
    end
  end
  local dkey, dspec = F[S.debounce_key], F[S.debounce_spec]
  -- the input key lives exactly as long as the record, so writing it with NX
  -- doubles as the existence check (one call instead of two); a debounced
  -- run may be absorbed, so it checks first and writes later
  local ink = K.input(pfx, id)
  local input_written = false
  if code == 1 then
    if dkey == '' and call('SET', ink, input, 'NX') then
      input_written = true
    elseif call('EXISTS', rk) == 1 then
      code = 0
    end
  end
  local dk, mode, window, maxd = nil, nil, 0, 0
  if code == 1 and dkey ~= '' then
    dk = K.debounce(pfx, job, dkey)
    local m, w, x = string.match(dspec, '^(%a+),(%d+),(%d+)$')
    mode, window, maxd = m, tonumber(w), tonumber(x)
    local holder = call('GET', dk)
    if holder then
      local hk = K.run(pfx, holder)
      local h = call('HMGET', hk, 'status', 'debounce_first_at')
      if mode == 'trailing' and h[1] == 'delayed' then
        local due = now + window
        if maxd > 0 then due = math.min(due, tonumber(h[2]) + maxd) end
        call('SET', K.input(pfx, holder), input)
        call('HSET', hk, 'scheduled_at', due, 'updated_at', now)
        call('HINCRBY', hk, 'debounced_count', 1)
        add_due(K.delayed(pfx), due, holder)
        id, code = holder, 3
      elseif mode == 'leading' and h[1] then
        call('HINCRBY', hk, 'debounced_count', 1)
        id, code = holder, 3
      end
    end
  end
  -- parents must exist; a cap must have room (the id slot then says why not)
  local deps, deps_st, why = nil, nil, nil
  if code == 1 and F[S.depends_json] ~= '' then
    deps = cjson.decode(F[S.depends_json])
    deps_st, why = deps_statuses(pfx, deps.on)
    if not deps_st then code = -21 end
  end
  local adm = nil
  if code == 1 then
    adm = adm_limits(pfx, job, queue, admission)
    why = adm_full(pfx, job, queue, adm)
    if why then code = -22 end
  end
  if code < 0 then
    if input_written then call('DEL', ink) end
    id = why
  end
  if code == 1 then
    local due = now
    if delay_ms ~= '' then due = now + tonumber(delay_ms) end
    if run_at ~= '' then due = math.max(tonumber(run_at), now) end
    if dk and mode == 'trailing' then due = math.max(due, now + window) end
    local status = 'queued'
    if due > now then status = 'delayed' end
    local ended_err = nil
    if deps then
      local held
      held, ended_err = deps_attach(pfx, id, deps.on, deps_st)
      status = held or status
    end
    -- a waiting node that takes the run at once (see direct_waiter)
    local d = false
    if status == 'queued' and ckey == '' and not asks_labels(F[S.extra_json]) then
      d = direct[queue]
      if d == nil then
        d = direct_waiter(pfx, queue, waiting, caller)
        direct[queue] = d
      end
      if d then
        local v = served_versions(d.served, job)
        if d.left <= 0 or not (v == true or (v and v[F[S.version]])) or not no_limits(job) then d = false end
      end
    end
    if d then status = 'executing' end
    -- the input lives in its own key: a long value would switch the whole
    -- record to Redis's hashtable encoding, several times larger
    if not input_written then call('SET', ink, input) end
    -- the whole record in one HSET; optional fields only when present, to keep it small
    -- (attempt, charged and updated_at are left out until they change: readers
    -- take 0, 0 and created_at; every field costs Redis time and memory per run)
    -- (no id: the key names the run; no scheduled_at unless later than created_at: readers
    -- take created_at, runtime/records.py; each field costs every queued run ~30 bytes)
    -- (nor priority 0, nor the default source: readers take them for missing ones)
    -- (nor max_attempts or timeout_ms when they are RECORD_DEFAULT's, nor ready_at: a run is
    -- ready from its creation until something queues it again, includes/common.lua)
    rec = {'job', job, 'queue', queue, 'status', status, 'created_at', now_text}
    if tonumber(F[S.max_attempts]) ~= RECORD_DEFAULT.max_attempts then put('max_attempts', F[S.max_attempts]) end
    if tonumber(F[S.timeout_ms]) ~= RECORD_DEFAULT.timeout_ms then put('timeout_ms', F[S.timeout_ms]) end
    if due ~= now then put('scheduled_at', int_text(due)) end
    if priority ~= 0 then put('priority', priority) end
    put_set('source', F[S.source])  -- '' for the default (runtime/submission.py source_field)
    put_set('backoff', F[S.backoff_json])  -- '' for the default (includes/backoff.lua)
    put_set('labels', F[S.labels_json]); put_set('tags', F[S.tags_json]); put_set('metadata', F[S.metadata_json])
    put_set('concurrency_key', ckey); put_set('idempotency_key', ikey); put_set('version', F[S.version])
    put_set('entry_id', F[S.entry_id]); put_set('rate_key', F[S.rate_key]); put_set('trace_context', F[S.trace_context])
    local project = 'default'
    local extra = nil
    if F[S.extra_json] ~= '' then
      extra = cjson.decode(F[S.extra_json])
      for k, v in pairs(extra) do put(k, tostring(v)) end
      if extra.parent_id then
        call('SADD', K.children(pfx, extra.parent_id), id)
        mark_satellite(pfx, extra.parent_id, 'children')
      end
      if extra.project then project = tostring(extra.project) end
    end
    -- every run of a project, by creation time: what run listings page through
    project_listed(pfx, project, id, now_text, put)
    if ik then call('SET', ik, id, 'PX', tonumber(ittl)) end
    if dk then
      put('debounce_key', dkey)
      put('debounce_first_at', now)
      -- trailing: held while the run waits (its status is checked too);
      -- leading: the window runs from the first trigger
      local hold = window
      if mode == 'trailing' then hold = (maxd > 0 and maxd or window * 100) + window end
      call('SET', dk, id, 'PX', math.max(hold, 1))
    end
    if F[S.ttl_ms] ~= '' then
      local expires = now + tonumber(F[S.ttl_ms])
      put('expires_at', expires)
      -- a run still queued then ends expired when due, as a delayed run is promoted (one handed to
      -- a waiting node has started: its entry matters only if the hand-off is never taken)
      add_due(K.ttl(pfx), expires, id)
    end
    if deps then put('depends_on', cjson.encode(deps.on)) end  -- [[parent, policy, name], ...]
    if not d and (adm[1] > 0 or adm[2] > 0) then put('adm', adm_enter(pfx, id, job, queue, adm)) end
    if d then
      -- straight to the waiting node, as runs_claim would lease it: the
      -- record is written once, already leased
      local expires = now + d.ttl
      -- (only runs of jobs without limits come here: no lease sets)
      HANDING_OFF = true
      for _, v in ipairs(lease_fields(d.node, 1, 1, expires, now, '')) do rec[#rec + 1] = v end
      HANDING_OFF = false
      call('HSET', rk, unpack(rec))
      local token = hold_lease(pfx, id, job, nil, d.node, 1, expires, now, '', false, leases)
      -- one claimed run, its values placed by name (includes/claim_reply.lua); numbers as text
      -- where it is at hand: cjson prints a number with snprintf (~3k instructions each)
      local r, at = d.runs, #d.runs
      r[at + CLAIMED.run_id] = id
      r[at + CLAIMED.token] = token
      r[at + CLAIMED.attempt] = '1'
      r[at + CLAIMED.job] = job
      r[at + CLAIMED.input] = input
      r[at + CLAIMED.timeout_ms] = F[S.timeout_ms]
      r[at + CLAIMED.ready_at_ms] = now_text
      r[at + CLAIMED.metadata] = F[S.metadata_json] ~= '' and F[S.metadata_json] or false
      r[at + CLAIMED.tags] = F[S.tags_json] ~= '' and F[S.tags_json] or false
      r[at + CLAIMED.step_count] = '0'
      d.left = d.left - 1
    elseif status == 'queued' then
      call('HSET', rk, unpack(rec))
      if not seq then
        local left = (#ARGV - a + 1) / 2  -- (this run and those after it)
        seq = call('INCRBY', K.seq(pfx), left) - left
      end
      seq = seq + 1
      local g = ckey ~= '' and ckey or nil
      local gkey = queue .. '|' .. (g or '')
      if groups_seen[gkey] then
        -- the group is known to be listed already: just the ordered sets
        local score = ready_score(priority, seq)
        append_at(entering, group_set(pfx, queue, g or ''), score, id)
        if g then append_at(entering, K.keyed_ready(pfx, queue), score, id) end
      else
        ready_add(pfx, id, queue, g, ready_score(priority, seq))
        groups_seen[gkey] = true
      end
      woke = true
      touched[queue] = true
    elseif status == 'waiting' then
      -- for its parents: no deadline; the last parent to finish queues it (deps_release)
      put('wait_kind', 'parents'); put('wait_started_at', now)
      call('HSET', rk, unpack(rec))
      call('ZADD', K.waiting(pfx), 1e15, id)
    elseif status == 'delayed' then
      call('HSET', rk, unpack(rec))
      add_due(K.delayed(pfx), due, id)
    else
      -- a parent had already failed: the run ends at once, by the edge's policy
      call('HSET', rk, unpack(rec))
      call('HSET', rk, 'error', ended_err)
      make_terminal(pfx, id, status, now, status == 'failed' and deps.dlq or deps.ttl, deps.cap)
    end
  end
  out[#out + 1] = id
  out[#out + 1] = code
end
for set, e in pairs(entering) do call_variadic('ZADD', set, e) end
add_leases(pfx, leases)
local mine = {}
local room = -1  -- what the caller's registration has left after the runs in `mine` (-1: used up)
for node, d in pairs(waiting) do
  if #d.runs > 0 then
    if node == caller then
      -- its intake takes them from this reply: no hand-off list between
      room = take_handoff(pfx, node, d.runs, d.registration) or -1
      mine = d.runs
    else
      push_handoff(pfx, node, d.runs, d.ttl, now, d.registration)
    end
  end
end
if woke then
  local left = false
  for queue in pairs(touched) do
    if hand_off(pfx, queue, now) then left = true end
  end
  if left then WAKE = true end
end
announce_work(channel, now, pfx)
return {out, mine, now, room}
