--[[ common: helpers shared by the run scripts. Every key is built by the
  generated include `keys` (K.<family>(pfx, ...), from runtime/keys.py) from the
  partition prefix (ARGV[1]), so every key a script touches carries the same
  hash tag and lives in one Redis Cluster slot. Scripts include `keys` first. ]]
--@include record_defaults
-- Per-call state (marked per-call): set at the start of every call, as a script's top level runs then
-- (a Redis Function's library is loaded once, where redis.call does not exist yet: runtime/lua_source.py).
local call = redis.call  --@per-call
local setresp = redis.setresp  --@per-call

-- An integer as decimal text. A Lua number given to redis.call is formatted
-- with %.17g, and concatenation uses %.14g: both go through the C library's
-- floating-point printer, which cost Redis 7.0 ~8% of its CPU on the drain
-- path; '%d' is the integer printer. Hot paths pass timestamps as text.
-- Texts are kept for the call: a script writes the same few timestamps many times.
local INT_TEXTS = {}  --@per-call
local function int_text(n)
  local t = INT_TEXTS[n]
  if not t then
    t = string.format('%d', n)
    INT_TEXTS[n] = t
  end
  return t
end

-- Nodes promote due runs (delayed ones, durable waits past their deadline, queued runs past their
-- TTL) on their leaser's ticks, every reap interval, and in between when their last promote
-- answered with an earlier due time. A run that becomes the first due of its set after that answer
-- would wait for the next regular tick, up to a second late. add_due keeps, per set, the earliest
-- due time the call added, and announce_work (at the script's end) tells the nodes on the wake
-- channel when one of them is now the first of its set: "due <ms until then> <partition prefix>",
-- so each node promotes that partition alone (a script's keys are all in one partition). The set's
-- head is read once per set at the end, not once per run: a bulk create of runs with a TTL read it
-- for each run (~9k instructions a read). A script that adds and does not announce leaves the run
-- to the next regular tick.
-- The same end tells the nodes to claim now (the partition prefix) when the call made a run
-- ready (make_ready) or freed what queued runs wait for (a script sets WAKE): a run made ready
-- by a call that woke nobody, a dependent its parent's finish queued, waited for a node's idle
-- poll (up to idle_poll_ms; ~0.5 s on average, measured).
local DUE = {}  --@per-call
local WAKE = false  --@per-call
-- Add a run to a set of due runs (delayed, waiting, ttl), noting when it is due.
local function add_due(key, due, id)
  call('ZADD', key, due, id)
  due = tonumber(due)
  local at = DUE[key]
  if at == nil or due < at then DUE[key] = due end
end
local function announce_work(channel, now, pfx)
  if WAKE then call('PUBLISH', channel, pfx) end
  local at = nil
  for key, due in pairs(DUE) do
    -- (the head is never later than a run this call added, unless the call took that run out again:
    -- then this announces a promote too early, which finds nothing and answers the real time)
    local head = call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if head[2] and tonumber(head[2]) >= due and (at == nil or due < at) then at = due end
  end
  if at then call('PUBLISH', channel, 'due ' .. int_text(math.max(at - now, 0)) .. ' ' .. pfx) end
end

-- A lease's fencing token: the node and the attempt it runs. As a rule it is not stored: a
-- record's lease_node and attempt give it (held_lease), one field fewer for every claim to write
-- and every finish to read (a hand-off stores it still, for older nodes: includes/claim.lua).
local function lease_token(node, attempt)
  return node .. '/' .. int_text(attempt)
end

-- Whether a run record's status, lease_node and attempt (nil or false when absent) show it
-- executing under the lease `token`. A finished run keeps its last lease's fields: the status
-- tells a lease that ended. (The record's attempt is already the integer text lease_token
-- makes: no formatting on the renewals' path.)
local function held_lease(status, node, attempt, token)
  return status == 'executing' and node and token == node .. '/' .. (attempt or '0') or false
end

-- The fencing check of every write a handler makes: true and the values of fields `...` of run
-- record `rk` (one HMGET, false when absent), or nil when the run is not executing under the
-- lease `token`.
local function read_if_leased(rk, token, ...)
  local r = call('HMGET', rk, 'status', 'lease_node', 'attempt', ...)
  if not held_lease(r[1], r[2], r[3], token) then return nil end
  return true, unpack(r, 4)
end

-- Redis server time in milliseconds: lease expiry is judged by one clock.
local function now_ms()
  local t = call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Sort key of the ready set: higher priority first, then the order in which
-- runs became ready (a per-partition sequence, so FIFO holds even within one
-- millisecond). Priorities are bounded to [-1000, 1000] and the sequence to
-- 2^42, so the score stays below 2^53 and exact.
local function ready_score(priority, seq)
  -- as integer text: a whole number below 2^53 (priority is bounded), printed without the float formatter
  return string.format('%d', (1000 - tonumber(priority)) * 4398046511104 + (tonumber(seq) % 4398046511104))
end

local function next_seq(pfx, n)
  return call('INCRBY', K.seq(pfx), n or 1)
end

--@include retention
-- Most entries one trim takes out by age (a backlog of them goes in several trims).
local TRIM_MOST = 1000
-- How long a run in a terminal status is kept: failed and dead-lettered runs by the
-- dead-letter retention, the others by the finished-run one.
local function retention_ms(status, ttl_ms, dlq_ttl_ms)
  if status == 'failed' or status == 'dead_letter' then return dlq_ttl_ms end
  return ttl_ms
end

-- The project index (K.project_index) is a stream: a run's entry has the id <created_at>-<seq> and
-- one field, r = run id. project_listed adds it and gives put(name, value) the record field locating
-- it, when one is needed: ps = the seq when not 0, or pi = the whole id when its time is not created_at
-- (the stream's last id was ahead of this clock, e.g. after a failover: XADD then takes a later id).
-- A missing field means seq 0: every stored field costs each run memory.
local function project_listed(pfx, project, id, created, put)
  local key = K.project_index(pfx, project)
  local eid = redis.pcall('XADD', key, created .. '-*', 'r', id)
  if type(eid) ~= 'string' then eid = call('XADD', key, '*', 'r', id) end
  local ms, seq = string.match(eid, '^(%d+)-(%d+)$')
  if ms ~= created then
    put('pi', eid)
  elseif seq ~= '0' then
    put('ps', seq)
  end
end

-- The project index entry of a run from its record fields created_at, ps and pi (project_listed).
local function project_entry_id(created, ps, pi)
  return pi or (created .. '-' .. (ps or '0'))
end

-- Record fields project_unlisted reads, in its order.
local PROJECT_FIELDS = {'project', 'created_at', 'ps', 'pi'}

-- Take a run out of its project's index: `f` its PROJECT_FIELDS (one HMGET). Runs created before the
-- index was a stream are in the legacy sorted set instead (ZREM of a missing member costs nothing).
local function project_unlisted(pfx, id, f)
  local project = f[1]
  if not project or project == '' then project = 'default' end
  -- (a record already gone, written before the retention margin existed: its entry is left to the
  -- listings, which drop entries of runs that no longer exist)
  if f[2] then call('XDEL', K.project_index(pfx, project), project_entry_id(f[2], f[3], f[4])) end
  call('ZREM', K.project_runs(pfx, project), id)
end

-- Keep a terminal-status index bounded by age and by count. Runs past their retention
-- leave their project's index with it (else that index kept an entry per run ever
-- finished); runs dropped by the cap are deleted with it, so no key outlives its index.
-- Returns how many entries left by age.
local function trim_index(pfx, index, now, ttl_ms, cap)
  local due = call('ZRANGEBYSCORE', index, '-inf', now - ttl_ms, 'LIMIT', 0, TRIM_MOST)
  -- their timelines end here too: one without a TTL (begun by a node of a version before the
  -- record's sat_ev mark, on a run a newer node finished; or written by any path after the run's
  -- end) would otherwise stay for good. A marked one expires with the record anyway. One DEL for
  -- the batch: a key that is not there costs Redis a lookup
  local timelines = {}
  for i, gid in ipairs(due) do
    project_unlisted(pfx, gid, call('HMGET', K.run(pfx, gid), unpack(PROJECT_FIELDS)))
    timelines[i] = K.events(pfx, gid)
  end
  if #due > 0 then
    call('ZREM', index, unpack(due))
    call('DEL', unpack(timelines))
  end
  local n = call('ZCARD', index)
  if n > cap then
    local gone = call('ZRANGE', index, 0, n - cap - 1)
    call('ZREMRANGEBYRANK', index, 0, n - cap - 1)
    for _, gid in ipairs(gone) do
      project_unlisted(pfx, gid, call('HMGET', K.run(pfx, gid), unpack(PROJECT_FIELDS)))
      call('DEL', K.run(pfx, gid), K.input(pfx, gid), K.events(pfx, gid), K.steps(pfx, gid), K.checkpoints(pfx, gid),
        K.children(pfx, gid), K.waits_on(pfx, gid), K.records(pfx, gid), K.chunks(pfx, gid), K.signals(pfx, gid),
        K.query_state(pfx, gid),
        K.dependents(pfx, gid), K.deps_pending(pfx, gid), K.parent_outputs(pfx, gid))
    end
  end
  return #due
end

--@include ready_sets

-- Append one event to the run's timeline (a capped stream; expires with the run). The first
-- event of a run marks its record (sat_ev, a satellite below): most runs never get one (their
-- status changes are derived from the record, see add_derived_event), and their finish then
-- spends no PEXPIRE on a stream that is not there. The entry goes in with NOMKSTREAM, so only that
-- first event costs a second call (and the mark).
local EVENTS_MAX = 1000
local function add_event(pfx, id, kind, data, now)
  local key = K.events(pfx, id)
  if not call('XADD', key, 'NOMKSTREAM', 'MAXLEN', '~', EVENTS_MAX, '*', 'type', kind, 'data', data, 'ts', now) then
    call('HSETNX', K.run(pfx, id), 'sat_ev', '1')
    call('XADD', key, 'MAXLEN', '~', EVENTS_MAX, '*', 'type', kind, 'data', data, 'ts', now)
  end
end

-- A fenced write a handler's node sends again (the reply of the first lost with a dropped
-- connection, so the client or ride_out tried again) must not be applied twice. The node numbers
-- its writes per channel and lease (1, 2, ...: one at a time, in order) and the record keeps the
-- last one applied as field w_<channel> = "<lease token> <number> <reply>" (tokens hold no
-- spaces). `mark` is that field, read with the fencing check; a write numbered '' is not tracked.
-- Returns the first write's reply (text) when this one was applied already, else nil.
local function written_before(mark, token, number)
  if number == '' or not mark then return nil end
  local t, n, reply = string.match(mark, '^(%S+) (%d+) ?(.*)$')
  if t == token and tonumber(n) >= tonumber(number) then return reply end
  return nil
end
-- The HSET arguments that record write `number` of `channel` as applied, with its reply.
local function written_mark(channel, token, number, reply)
  if number == '' then return {} end
  return {'w_' .. channel, token .. ' ' .. number .. ' ' .. reply}
end
-- A reply of two parts (a count or sequence, a stream entry id) as noted (note_written) and as sent.
local function pair_noted(a, b) return a .. ' ' .. b end
local function pair_reply(noted)
  local a, b = string.match(noted, '^(%d+) (.*)$')
  return {tonumber(a), b}
end
-- Record write `number` of `channel` as applied, with its reply (see written_before).
local function note_written(rec, channel, token, number, reply)
  if number ~= '' then call('HSET', rec, unpack(written_mark(channel, token, number, reply))) end
end

-- The status changes every run goes through (a lease taken, an attempt ended,
-- a terminal status) are all in the record (attempts, finished_at): readers
-- derive them (runtime/timeline.py), so they are written to the timeline only
-- for a watched run (record field tl, set by run_watch for a live reader that
-- blocks on the stream). `watched` is the run's tl field, which every caller
-- reads with the fields it needs anyway (no read of its own here).
local function add_derived_event(pfx, id, kind, data, now, watched)
  if watched then add_event(pfx, id, kind, data, now) end
end

-- Keys that belong to one run besides its record and its input; they expire with it. Most runs
-- have none of them, so each is noted on the record when first written (sat_<name>) and only
-- those are expired.
local SATELLITES = {ev = K.events, steps = K.steps, cp = K.checkpoints, children = K.children, wait = K.waits_on,
  rec = K.records, chunks = K.chunks, sig = K.signals, state = K.query_state, dents = K.dependents,
  deps = K.deps_pending, pout = K.parent_outputs}
local SATELLITE_NAMES = {'ev', 'steps', 'cp', 'children', 'wait', 'rec', 'chunks', 'sig', 'state', 'dents', 'deps', 'pout'}
local function mark_satellite(pfx, id, name)
  call('HSETNX', K.run(pfx, id), 'sat_' .. name, '1')
end
local SATELLITE_MARKS = {}
-- (a numeric loop, not ipairs: a library's top level has no global functions)
for i = 1, #SATELLITE_NAMES do SATELLITE_MARKS[i] = 'sat_' .. SATELLITE_NAMES[i] end
-- Give every key of a run besides its record the TTL `ttl` (integer text). `rec`, when given, is
-- the run's fields already read by name (with its sat_<name> marks); else the marks are read here.
local function expire_satellites(pfx, id, rec, ttl)
  call('PEXPIRE', K.input(pfx, id), ttl)
  local marks = (not rec) and call('HMGET', K.run(pfx, id), unpack(SATELLITE_MARKS))
  for i = 1, #SATELLITE_NAMES do
    if (rec and rec[SATELLITE_MARKS[i]]) or (marks and marks[i]) then
      call('PEXPIRE', SATELLITES[SATELLITE_NAMES[i]](pfx, id), ttl)
    end
  end
  -- a watched run's end went to its timeline in this very call (add_derived_event): when that was
  -- its first event, the mark it wrote came after `rec` was read
  if rec and rec.tl and not rec.sat_ev then call('PEXPIRE', K.events(pfx, id), ttl) end
end

-- All of a run's fields by name (nil when absent, RECORD_DEFAULT's values for the fields a
-- record leaves out when they are the default): for a reader that needs most of a small
-- record, one pass over it costs Redis less than looking up each of ~30 names (most of them
-- absent, so each lookup scans the whole listpack). It is read as a RESP3 map, which Redis
-- turns into the field -> value table itself: a quarter fewer instructions than a flat
-- RESP2 array copied into a table in Lua (bench/script_instructions.py). Only this call
-- speaks RESP3: under it a missing value is nil, not false, which would cut an array short.
local function read_all(pfx, id)
  setresp(3)
  local rec = call('HGETALL', K.run(pfx, id)).map
  setresp(2)
  rec.max_attempts = rec.max_attempts or RECORD_DEFAULT.max_attempts
  rec.timeout_ms = rec.timeout_ms or RECORD_DEFAULT.timeout_ms
  return rec
end

-- A run's fields read in one HMGET, by name (false when absent; RECORD_DEFAULT's value for a
-- field the record leaves out when it is the default).
local function read_fields(pfx, id, names)
  local values = call('HMGET', K.run(pfx, id), unpack(names))
  local rec = {}
  for i, name in ipairs(names) do rec[name] = values[i] or RECORD_DEFAULT[name] or false end
  return rec
end

-- Put a run (back) into its queue's ready set.
local function make_ready(pfx, id, queue, priority, now)
  local rk = K.run(pfx, id)
  call('HSET', rk, 'status', 'queued', 'updated_at', now, 'ready_at', now)
  ready_add(pfx, id, queue, call('HGET', rk, 'concurrency_key'), ready_score(priority, next_seq(pfx)))
  WAKE = true  -- (announce_work)
end

-- Write the record of a durable wait step (event arrived, or timed out).
-- data is JSON text written as is (never decoded, so numbers stay exact).
local function complete_wait_step(pfx, id, step, index, started, data, status, now, at)
  local before = call('HGET', K.steps(pfx, id), step)  -- (the waiting record, written by the handler's side)
  -- the step's position in the handler (runtime/step_positions.py): the caller's, else the waiting
  -- record's (where "at" is the last field)
  if not at or at == '' then
    at = before and string.match(before, ',"at":(%b[])}$')
  end
  -- a wait that ended with its event or message is a completed step, counted as step_record counts one
  -- (the run's completed_step_count, durably's completedStepCount), once
  if status == 'completed' and not (before and string.find(before, '"status":"completed"', 1, true)) then
    call('HINCRBY', K.run(pfx, id), 'completed_step_count', 1)
  end
  local rec = '{"name":' .. cjson.encode(step) .. ',"index":' .. (index or 'null') .. ',"status":'
    .. cjson.encode(status) .. ',"output":' .. data .. ',"error":null,"started_at":' .. (started or now)
    .. ',"completed_at":' .. now .. (at and (',"at":' .. at) or '') .. '}'
  call('HSET', K.steps(pfx, id), step, rec)
  mark_satellite(pfx, id, 'steps')
  add_event(pfx, id, 'step', rec, now)
end

-- Park a run in status paused (index {p}:paused); it is never leased until
-- run_resume puts it back. `from` is the status it left; `due` the time a
-- delayed run was due ('' when none).
local function park_paused(pfx, id, from, due, now, why)
  local rk = K.run(pfx, id)
  call('HSET', rk, 'status', 'paused', 'paused_at', now, 'paused_from', from, 'updated_at', now)
  if due and due ~= '' then call('HSET', rk, 'paused_due', due) else call('HDEL', rk, 'paused_due') end
  call('HDEL', rk, 'pause_requested')
  call('ZADD', K.paused(pfx), now, id)
  add_event(pfx, id, 'status', '{"status":"paused","from":' .. cjson.encode(from) .. ',"reason":'
    .. cjson.encode(why) .. '}', now)
end

-- Wake a waiting run: clear its wait and queue it again (or park it, when a
-- pause was requested while it waited).
local function resume(pfx, id, now, why)
  local rk = K.run(pfx, id)
  local r = call('HMGET', rk, 'status', 'queue', 'priority', 'wait_kind', 'wait_key', 'pause_requested')
  if r[1] ~= 'waiting' then return false end
  call('ZREM', K.waiting(pfx), id)
  if r[4] == 'event' and r[5] then call('SREM', K.event_waiters(pfx, r[5]), id) end
  call('HDEL', rk, 'wait_kind', 'wait_key', 'wait_step', 'wait_index', 'wait_started_at', 'wait_until')
  if r[6] == '1' then
    park_paused(pfx, id, 'waiting', '', now, why)
    return true
  end
  make_ready(pfx, id, r[2], r[3] or '0', now)
  add_event(pfx, id, 'status', '{"status":"queued","reason":' .. cjson.encode(why) .. '}', now)
  return true
end

-- What a call that settles many runs writes once for all of them, at its end (finish_later):
-- `unleased` the ids leaving the leased index, `indexed` per terminal-status index its entries
-- (score, id pairs), `trims` the indices to trim (index -> retention ms) and `finished` the
-- runs finished per queue. One variadic command per set, not one per run.
local function later_work()
  return {unleased = {}, indexed = {}, trims = {}, finished = {}}
end

-- Count a finished run in its queue's throughput: runs finished per minute, in one hash per hour
-- (fields: epoch minutes) kept two hours, so the last 60 minutes are always readable (runtime/queues.py).
local function add_finished(pfx, queue, now, n)
  local minute = math.floor(now / 60000)
  local tk = K.throughput(pfx, queue, int_text(math.floor(minute / 60)))
  if call('HINCRBY', tk, int_text(minute), n) == n then call('PEXPIRE', tk, 7260000) end
end

-- With `later` (later_work), the runs a call finished are added up per queue and written once
-- (finish_later: the call's time is one minute).
local function count_finished(pfx, queue, now, later)
  local q = queue or 'default'
  if later then
    later.finished[q] = (later.finished[q] or 0) + 1
  else
    add_finished(pfx, q, now, 1)
  end
end

-- Tell the notifier actors (runtime/notify.py) that a run finished: only runs created with the
-- `notify` mark (their job has completion hooks or their project webhooks), so others cost nothing.
-- Processed entries are deleted; the cap only bounds a backlog no notifier takes (see the README).
local OUTBOX_MAX = 1000000
local function notify_finished(pfx, id, status, now)
  call('XADD', K.outbox(pfx), 'MAXLEN', '~', OUTBOX_MAX, '*', 'id', id, 'status', status, 'ts', now)
end

--@include deps
--@include admission

-- Move a run to a terminal status: record time, index, expire the record, and
-- wake a parent that waits for it as a child, settle the runs that depend on it
-- (includes/deps.lua) and stop counting it as admitted (includes/admission.lua). `batch` (optional) lets a caller
-- that settles many runs in one call write less: `sets` and `dels` are more
-- record fields written and removed in the same two calls, `rec` the run's
-- fields it already read (parent_id and the sat_ marks), and `later` (later_work) collects
-- the index entries and trims written once at the end (finish_later) instead of per run.
function make_terminal(pfx, id, status, now, ttl_ms, cap, batch)  -- the local declared in deps
  local rk = K.run(pfx, id)
  -- finished_at is the record's last update (readers take it as updated_at). The last
  -- lease's fields stay: they tell which node completed the run and describe a lease only
  -- while the status is executing (runtime/records.py); settle() leaves the run's lease
  -- sets and leased index before it gets here, and every script that acts for a lease
  -- checks the status as well as the token.
  local finished = int_text(now)
  local sets = {'status', status, 'finished_at', finished}
  local dels = false  -- (a table only when a field goes: most runs remove none)
  -- the fields read below, when the caller did not read them already (one HMGET)
  local rec = batch and batch.rec or read_fields(pfx, id, {'parent_id', 'queue', 'notify', 'tl', 'sat_dents', 'adm',
    'job', 'next_retry_at'})
  if rec.next_retry_at then dels = {'next_retry_at'} end
  if batch then
    local more, less = batch.sets, batch.dels
    if more then for i = 1, #more do sets[#sets + 1] = more[i] end end
    if less and #less > 0 then
      dels = dels or {}
      for i = 1, #less do dels[#dels + 1] = less[i] end
    end
  end
  -- (a run that never started may still count as admitted; settle's runs started)
  if not (batch and batch.rec) and rec.adm then
    adm_leave(pfx, id, rec.job, rec.queue, rec.adm)
    dels = dels or {}
    dels[#dels + 1] = 'adm'
  end
  call('HSET', rk, unpack(sets))
  if dels then call('HDEL', rk, unpack(dels)) end
  local index = K.status(pfx, status)
  local later = batch and batch.later
  if later then
    append_at(later.indexed, index, finished, id)
  else
    call('ZADD', index, finished, id)
  end
  if rec.tl then add_event(pfx, id, 'status', '{"status":' .. cjson.encode(status) .. '}', now) end
  local ttl = int_text(ttl_ms + RETENTION_MARGIN_MS)  -- (see RETENTION_MARGIN_MS)
  call('PEXPIRE', rk, ttl)
  expire_satellites(pfx, id, batch and batch.rec, ttl)
  if later then
    later.trims[index] = ttl_ms
  else
    trim_index(pfx, index, now, ttl_ms, cap)
  end
  local parent, queue, notify, dents = rec.parent_id, rec.queue, rec.notify, rec.sat_dents
  if notify then notify_finished(pfx, id, status, now) end
  count_finished(pfx, queue, now, later)
  if parent then
    local wk = K.waits_on(pfx, parent)
    if call('SREM', wk, id) == 1 and call('SCARD', wk) == 0 then
      resume(pfx, parent, now, 'children finished')
    end
  end
  if dents then deps_release(pfx, id, status, now, ttl_ms, cap) end
end

-- Write what settle and make_terminal left to the caller (later_work): leased index, status
-- indices (each trimmed after its entries went in), throughput counts.
local function finish_later(pfx, later, now, cap)
  call_variadic('ZREM', K.leased(pfx), later.unleased)
  for index, entries in pairs(later.indexed) do call_variadic('ZADD', index, entries) end
  for index, ttl_ms in pairs(later.trims) do trim_index(pfx, index, now, ttl_ms, cap) end
  for queue, n in pairs(later.finished) do add_finished(pfx, queue, now, n) end
end

-- Lease sets exist only for what a limit counts: the job's set ('j') for
-- max_concurrency, the key's ('k') for max_concurrency_per_key, and the named
-- pool's (after '|') for a job in a pool. A leased run notes on its record (cc)
-- which sets hold it, so its release takes it out of exactly those even when
-- the limits changed in between (limits_apply).
local function lease_sets_of(lim, ckey)
  local cc = ''
  if lim and lim[1] > 0 then cc = 'j' end
  if lim and ckey and ckey ~= '' and lim[2] > 0 then cc = cc .. 'k' end
  if lim and lim.pool then cc = cc .. '|' .. lim.pool end
  return cc
end

-- The sets of a cc besides the job's ('j' in the returned flags), listed by
-- name in lease_sets for reconcile: the key's, and the pool's (after '|';
-- pool names never hold '|').
local function listed_lease_sets(pfx, job, ckey, cc)
  local flags, pool = string.match(cc, '^([^|]*)|?(.*)$')
  local sets = {}
  if string.find(flags, 'k', 1, true) and ckey and ckey ~= '' then sets[#sets + 1] = K.key_leases(pfx, job, ckey) end
  if pool ~= '' then sets[#sets + 1] = K.pool_leases(pfx, pool) end
  return flags, sets
end

local function hold_lease_sets(pfx, id, job, ckey, cc)
  if cc == '' then return end  -- (most runs: their job has no limit that counts leases)
  local flags, sets = listed_lease_sets(pfx, job, ckey, cc)
  if string.find(flags, 'j', 1, true) then call('SADD', K.job_leases(pfx, job), id) end
  for _, set in ipairs(sets) do
    call('SADD', set, id)
    call('SADD', K.lease_sets(pfx), set)  -- key and pool sets come and go: listed for reconcile
  end
end

-- cc false: a run leased before records noted their sets; it may be in both.
local function release_lease_sets(pfx, id, job, ckey, cc)
  if cc == '' then return end  -- (most runs: held in no lease set)
  local flags, sets = listed_lease_sets(pfx, job, ckey, cc or 'jk')
  if string.find(flags, 'j', 1, true) then call('SREM', K.job_leases(pfx, job), id) end
  for _, set in ipairs(sets) do
    call('SREM', set, id)
    -- these sets come and go with their keys and pools; keep the set of names small
    if call('SCARD', set) == 0 then call('SREM', K.lease_sets(pfx), set) end
  end
end

-- Drop a run's lease and its places in the lease sets its record names (cc). With `later`
-- (later_work), the leased index entry goes with the others of the call (finish_later).
local function release_lease(pfx, id, job, ckey, cc, later)
  if later then
    later.unleased[#later.unleased + 1] = id
  else
    call('ZREM', K.leased(pfx), id)
  end
  release_lease_sets(pfx, id, job, ckey, cc)
end
