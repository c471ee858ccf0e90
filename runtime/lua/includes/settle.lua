--[[ settle: close the current attempt of a leased run and decide what comes
  next (completed, canceled, retry with backoff, dead letter, or given back
  without charging an attempt). Shared by runs_finish and leases_reap, so a
  crashed attempt and a failed one follow exactly the same policy. ]]
--@include backoff

-- Delay before retry number `charged` (1-based count of charged attempts); a run
-- created with the default backoff stores none.
local function backoff_ms(spec, charged, rnd)
  if not spec or spec == '' then spec = DEFAULT_BACKOFF end
  local kind, initial, maxd, jitter = 'exponential', 1000, 60000, 0
  if spec and string.sub(spec, 1, 1) == '{' then
    local b = cjson.decode(spec)
    kind = b.kind or kind
    initial = tonumber(b.initial_ms or initial)
    maxd = tonumber(b.max_ms or maxd)
    jitter = tonumber(b.jitter or jitter)
  elseif spec and spec ~= '' then
    -- compact form "kind,initial_ms,max_ms,jitter": short values keep the
    -- record a small listpack-encoded hash
    local k, a, m, j = string.match(spec, '^(%a+),([%d.]+),([%d.]+),([%d.]+)$')
    kind, initial, maxd, jitter = k or kind, tonumber(a) or initial, tonumber(m) or maxd, tonumber(j) or jitter
  end
  local d = initial
  if kind == 'linear' then d = initial * charged
  elseif kind == 'exponential' then d = initial * (2 ^ (charged - 1)) end
  if d > maxd then d = maxd end
  -- jitter spreads retries over [d * (1 - jitter), d]
  d = d - d * jitter * tonumber(rnd)
  return math.floor(d)
end

-- The fields settle() reads, in one HMGET (runs_finish reads them for its fencing check too).
local SETTLE_FIELDS = {'job', 'queue', 'concurrency_key', 'priority', 'charged', 'max_attempts', 'backoff',
  'attempt', 'attempt_started_at', 'lease_node', 'cancel_requested', 'attempts', 'status',
  'parent_id', 'cc', 'tl', 'notify', 'error', 'next_retry_at'}
-- and the satellite marks (a loop, not unpack: a library's top level has no global functions)
for i = 1, #SATELLITE_MARKS do SETTLE_FIELDS[#SETTLE_FIELDS + 1] = SATELLITE_MARKS[i] end

-- The JSON of the attempt a settled lease closes (one per lease, written exactly once, by settle):
-- `r` the run's SETTLE_FIELDS, `err` a JSON object or ''.
local function attempt_json(r, outcome, now, err)
  return '{"number":' .. (r.attempt or '0') .. ',"status":' .. cjson.encode(outcome)
    .. ',"started_at":' .. (r.attempt_started_at or 'null') .. ',"finished_at":' .. now
    .. ',"worker_id":' .. cjson.encode(r.lease_node or '')
    .. ',"error":' .. ((err ~= '' and err) or 'null') .. '}'
end

-- An outcome sent again because the reply to the first was lost (a dropped connection, the
-- client tried again): the record shows this very attempt (`token`) settled with this outcome.
-- Returns the run's status then (the first call's answer), else nil: the outcome is rejected as
-- fenced off. A lease the reapers settled (crashed) is not mistaken for it: the outcome differs.
local function settled_before(r, token, outcome)
  if r.status == 'completed' then
    if outcome == 'completed' and lease_token(r.lease_node or '', r.attempt or 0) == token then return r.status end
    return nil
  end
  if r.status == nil or r.status == 'executing' or r.attempts == nil then return nil end
  local list = cjson.decode(r.attempts)
  local last = list[#list]
  if last == nil or lease_token(last.worker_id or '', last.number or 0) ~= token then return nil end
  if last.status == outcome or (last.status == 'canceled' and r.cancel_requested == '1') then return r.status end
  return nil
end

-- The lease's fields a run that leaves executing without ending loses: its node's lease is over. A
-- stored token goes too (one a hand-off wrote, or a node of an earlier version: includes/claim.lua
-- lease_fields), or a zombie of that node's would still match it once another node leased the run.
local LEASE_GONE = {'lease_node', 'lease_expires_at', 'cc', 'lease_token'}

-- make_terminal's dels when a completed run's record holds an earlier attempt's error (never written to)
local ERROR_FIELD = {'error'}

-- outcome: completed | failed | timed_out | crashed | canceled | released | waiting
-- (a 'waiting' outcome of kind 'paused' parks the run in status paused)
-- err: JSON object {message, type, stack} or ''.  Returns the new status.
-- `rec`: the run's SETTLE_FIELDS when the caller read them (else read here);
-- `later` (later_work): when given, the index writes and trims of many runs are left to the
-- caller, who makes them once (finish_later) rather than once per run.
local function settle(pfx, id, outcome, output, err, permanent, now, rnd, ttl_ms, dlq_ttl_ms, cap, rec, later)
  local r = rec or read_fields(pfx, id, SETTLE_FIELDS)
  local job, queue, ckey, priority = r.job, r.queue, r.concurrency_key, r.priority or '0'
  release_lease(pfx, id, job, ckey, r.cc, later)
  -- a requested cancellation wins over a failure and over a release (a released
  -- run would otherwise be queued and executed again)
  if outcome ~= 'completed' and r.cancel_requested == '1' then outcome = 'canceled' end

  if outcome == 'completed' then
    -- the completing attempt gets no entry in attempts: readers derive it from attempt,
    -- attempt_started_at, finished_at and lease_node (runtime/records.py record_attempts),
    -- because its JSON (~130 bytes) would switch the record to Redis's hashtable
    -- encoding, four times the memory of the listpack it stays in for as long as it is kept
    if r.tl then add_derived_event(pfx, id, 'attempt', attempt_json(r, outcome, now, err), now, r.tl) end
    -- an error of an earlier attempt goes; r holds error (read_all or SETTLE_FIELDS). An output
    -- of null is not written: readers take a missing output for null (runtime/records.py)
    make_terminal(pfx, id, 'completed', now, ttl_ms, cap,
      {sets = output ~= 'null' and {'output', output} or nil, dels = r.error and ERROR_FIELD or nil, rec = r,
       later = later})
    return 'completed'
  end
  local rk = K.run(pfx, id)
  local charged, max_attempts = tonumber(r.charged or '0'), tonumber(r.max_attempts or RECORD_DEFAULT.max_attempts)
  local record = attempt_json(r, outcome, now, err)
  local attempts = r.attempts or '[]'
  if attempts == '[]' then attempts = '[' .. record .. ']'
  else attempts = string.sub(attempts, 1, -2) .. ',' .. record .. ']' end
  add_derived_event(pfx, id, 'attempt', record, now, r.tl or false)
  -- the attempt and the error go out with the record's next write (one HSET per outcome)
  local sets = {'attempts', attempts, 'heartbeat_at', now}
  -- (a release says why in its attempt only: the run itself did nothing wrong)
  if err ~= '' and outcome ~= 'released' then
    sets[#sets + 1] = 'error'
    sets[#sets + 1] = err
  end
  local batch = {sets = sets, rec = r, later = later}

  if outcome == 'canceled' then
    make_terminal(pfx, id, 'canceled', now, ttl_ms, cap, batch)
    return 'canceled'
  end
  if outcome == 'waiting' or outcome == 'released' or permanent ~= '1' and charged < max_attempts then
    call('HSET', rk, unpack(sets))  -- not terminal: the attempt is written on its own
  end
  if outcome == 'waiting' then
    -- a durable wait: the attempt ends, the slot and lease are freed, and the
    -- run is not charged; it resumes (re-leased, steps replayed) when woken
    local w = cjson.decode(output)
    if w.kind == 'paused' then
      -- paused at a step boundary: uncharged, parked until run_resume
      call('HSET', rk, 'charged', math.max(charged - 1, 0))
      call('HDEL', rk, unpack(LEASE_GONE))
      park_paused(pfx, id, 'executing', '', now, 'step boundary')
      return 'paused'
    end
    call('HSET', rk, 'charged', math.max(charged - 1, 0), 'status', 'waiting', 'updated_at', now,
      'wait_kind', w.kind, 'wait_step', w.step, 'wait_index', w.index, 'wait_started_at', now)
    call('HDEL', rk, unpack(LEASE_GONE))
    add_event(pfx, id, 'status', '{"status":"waiting","kind":' .. cjson.encode(w.kind) .. '}', now)
    local deadline = tonumber(w.deadline) or 1e15
    if w.kind == 'event' or w.kind == 'signal' or w.kind == 'token' then
      -- an event kept, a signal buffered or a token settled before the wait began is delivered at once
      -- (messages.lua)
      call('HSET', rk, 'wait_key', w.key)
      if message_wait_begins(pfx, id, w, now) then return 'queued' end
      if w.kind == 'event' then call('SADD', K.event_waiters(pfx, w.key), id) end
    elseif w.kind == 'children' then
      local wk = K.waits_on(pfx, id)
      mark_satellite(pfx, id, 'wait')
      for _, child in ipairs(w.ids) do
        local st = call('HGET', K.run(pfx, child), 'status')
        if st and not TERMINAL[st] then
          call('SADD', wk, child)
        end
      end
      if call('SCARD', wk) == 0 then
        resume(pfx, id, now, 'children finished')
        return 'queued'
      end
    end
    add_due(K.waiting(pfx), deadline, id)
    return 'waiting'
  elseif outcome == 'released' then
    -- graceful shutdown: hand the run back without charging the attempt
    call('HSET', rk, 'charged', math.max(charged - 1, 0))
    call('HDEL', rk, unpack(LEASE_GONE))
    make_ready(pfx, id, queue, priority, now)
    return 'queued'
  end
  if permanent == '1' then
    make_terminal(pfx, id, 'failed', now, dlq_ttl_ms, cap, batch)
    return 'failed'
  end
  if charged >= max_attempts then
    make_terminal(pfx, id, 'dead_letter', now, dlq_ttl_ms, cap, batch)
    return 'dead_letter'
  end
  local due = now + backoff_ms(r.backoff, charged, rnd)
  call('HSET', rk, 'status', 'delayed', 'next_retry_at', due, 'updated_at', now)
  call('HDEL', rk, unpack(LEASE_GONE))
  add_due(K.delayed(pfx), due, id)
  return 'delayed'
end
