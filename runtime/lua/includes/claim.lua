-- Leasing runnable runs to one node: shared by runs_claim (a node asks) and
-- runs_create (a new run is handed straight to a node that registered as
-- waiting, see the waiter functions below). Needs the common include.

-- A node's served jobs (runs_claim's ARGV[7], a registration's fourth value: "job" or
-- "job@v1|v2", comma-separated), for served_versions to look jobs up in.
local function served_list(jobs_csv)
  return {csv = ',' .. jobs_csv .. ',', found = {}}
end

-- The versions of `job` a served_list accepts: true (any version), a set of versions ('' =
-- unversioned runs), or false when the node does not serve the job. Only the jobs a call meets are
-- read out of the list, each once: parsing every entry cost Redis ~5k instructions per job the
-- node serves, in every claim and for every run handed to a waiting node.
local function served_versions(served, job)
  local v = served.found[job]
  if v ~= nil then return v end
  v = false
  local csv, needle, from = served.csv, ',' .. job, 1
  while true do
    local s, e = string.find(csv, needle, from, true)
    if not s then break end
    local after = string.sub(csv, e + 1, e + 1)
    if after == ',' then
      v = true
      break
    elseif after == '@' then
      local versions = string.match(csv, '^[^,]*', e + 2)
      if versions == '' or versions == '*' then
        v = true
      else
        v = {[''] = true}
        for version in string.gmatch(versions, '[^|]+') do v[version] = true end
      end
      break
    end
    from = e + 1  -- a longer job name that starts with this one
  end
  served.found[job] = v
  return v
end

-- A job's limits: max running, max running per key, rate n per window ms,
-- per rate key n per window ms (0 = none); runtime overrides win. The named
-- limits it shares with other jobs (l.pool, l.srate; absent when none) are
-- the code's: an override changes only the job's own limits (runtime/shared_limits.py).
local function job_limits(pfx, job)
  local over = call('HGET', K.jobs_override(pfx), job)
  local code = (not over) and call('HGET', K.jobs(pfx), job)
  local l = {0, 0, 0, 0, 0, 0}
  if over or code then
    local i = 1
    for part in string.gmatch((over or code) .. ',', '([^,]*),') do
      if i <= 6 then l[i] = tonumber(part) or 0 end
      i = i + 1
    end
  end
  if over then code = call('HGET', K.jobs(pfx), job) end
  if code then shared_names(l, code) end
  return l
end

-- The record fields of a lease besides its status (executing), as HSET arguments;
-- cc names the lease sets that hold the run (lease_sets_of). Its start is not written
-- again as heartbeat_at and updated_at: readers take attempt_started_at for both
-- (runtime/records.py), one record field fewer to write and read per run for each. Nor is
-- its token, as a rule: lease_node and attempt give it (held_lease). A run handed to a waiting
-- node (HANDING_OFF) is the exception: that node may be of an earlier version, whose scripts
-- fence its writes by the stored token (README, "Mixed versions during a rolling upgrade").
local HANDING_OFF = false  --@per-call
local function lease_fields(node, attempt, charged, expires, now, cc)
  local f = {'attempt', int_text(attempt), 'charged', int_text(charged),
    'lease_node', node, 'lease_expires_at', int_text(expires), 'attempt_started_at', int_text(now), 'cc', cc}
  if HANDING_OFF then
    f[#f + 1] = 'lease_token'
    f[#f + 1] = lease_token(node, attempt)
  end
  return f
end

-- Everything of a lease besides the record's fields: leased index, the lease
-- sets its limits count it in (cc), timeline (`watched`: the run's tl field).
-- `leases` (new_leases): the list the leased index entry (expiry, id) is appended to, for
-- the caller to add with the others of its call in one ZADD (add_leases). Returns the lease token.
local function hold_lease(pfx, id, job, ckey, node, attempt, expires, now, cc, watched, leases)
  leases[#leases + 1] = int_text(expires)
  leases[#leases + 1] = id
  hold_lease_sets(pfx, id, job, ckey, cc)
  if watched then
    add_event(pfx, id, 'status', '{"status":"executing","attempt":' .. attempt .. ',"node":'
      .. cjson.encode(node) .. '}', now)
  end
  return lease_token(node, attempt)
end

-- Lease a run that is out of its ready set to a node. Returns the token.
-- `lim` is its job's limits. The run's first start is not written as started_at: readers
-- take the first attempt's start (runtime/records.py).
local function lease_run(pfx, id, job, ckey, node, attempt, charged, ttl, now, lim, watched, leases)
  local expires = now + ttl
  local cc = lease_sets_of(lim, ckey)
  call('HSET', K.run(pfx, id), 'status', 'executing', unpack(lease_fields(node, attempt, charged, expires, now, cc)))
  return hold_lease(pfx, id, job, ckey, node, attempt, expires, now, cc, watched, leases)
end

-- A list for hold_lease to collect leased index entries in, for add_leases. It starts with the
-- anchor (runtime/keys.py): added first, it turns a set still in the listpack encoding into a
-- skiplist before the leases go in.
local function new_leases()
  return {LEASED_ANCHOR_SCORE, LEASED_ANCHOR}
end

-- Add the leased index entries hold_lease collected in `leases` (new_leases), in one ZADD per piece.
local function add_leases(pfx, leases)
  if #leases > 2 then call_variadic('ZADD', K.leased(pfx), leases) end
end

-- how many entries past what a claim still wants its first read of a lone group takes: a few
-- skipped runs at the head (limited, unserved, waiting for affinity) need no second read
local LONE_SLACK = 8

-- Lease up to ``want`` runs of the given queues and jobs to ``node`` (see
-- runs_claim's header for the rules). Returns the flat list of CLAIMED_SIZE fields per
-- leased run, and the ms until a rate limit lets a skipped run go (-1 none).
-- ``labels_csv``: the labels the node offers (includes/affinity.lua); ``aging_ms``: priority aging (flow.lua).
local function claim_runs(pfx, node, ttl, want, scan, queues_csv, jobs_csv, offset, fin_ttl, cap, now, labels_csv,
    aging_ms)
  -- a queue's ready runs are all in the groups it lists: a claim that finds every queue's list empty
  -- (an idle node's, after each run it was handed) needs none of the setup below, ~40% of its cost
  local any_ready = false
  for q in string.gmatch(queues_csv, '[^,]+') do
    if call('ZCARD', K.groups(pfx, q)) > 0 then
      any_ready = true
      break
    end
  end
  if not any_ready then return {}, -1 end
  local out = {}
  local removed = 0  -- entries try_claim took out of a ready set (claimed, expired or dangling)
  local have = node_labels(labels_csv, node)
  local weight = 1  -- the fairness weight of the run try_claim leased last (flow.lua)
  local job_refused = false  -- try_claim refused a run by a limit of its whole job (concurrency, rate, shared)
  local retry_in = -1
  local emptied = {}  -- groups runs were taken from: checked once at the end (groups_pruned)
  -- Per-run writes a claim makes once for all its runs (one variadic command each, not one
  -- command per run): entries leaving ready sets (ready_removals, flushed before a set is read
  -- again), leased index entries (add_leases) and the runs' inputs (one MGET).
  local leaving = {}
  local leases = new_leases()
  local input_at = {}  -- out positions of the claimed runs' inputs, in the order of input_keys
  local input_keys = {}

  local served = served_list(jobs_csv)
  local queues = {}
  for q in string.gmatch(queues_csv, '[^,]+') do
    if call('SISMEMBER', K.paused_queues(pfx), q) == 0 then queues[#queues + 1] = q end
  end

  local limits = {}
  local function limit_of(job)
    local l = limits[job]
    if l == nil then
      l = job_limits(pfx, job)
      limits[job] = l
    end
    return l
  end

  -- take a candidate out of its ready set, counted (a deeper read starts past what left)
  local function take_out(id, queue, group)
    ready_remove(pfx, id, queue, group, emptied, leaving)
    removed = removed + 1
  end

  local function note_retry(ms)
    if retry_in < 0 or ms < retry_in then retry_in = ms end
  end

  -- try to lease one candidate; returns true when leased
  local function try_claim(queue, gk, g, id)
    -- the whole record: a queued run's is a few fields, and one pass over them costs Redis less
    -- than looking up each of the ~20 names read here (most absent)
    local r = read_all(pfx, id)
    -- (a record leaves out ready_at while the run is ready since its creation)
    local ready_at = r.ready_at or r.created_at
    local job, ckey = r.job, r.concurrency_key
    if not job or r.status ~= 'queued' then
      -- dangling entry (record expired, or the run left the queue another way)
      take_out(id, queue, g ~= '' and g or nil)
      return false
    end
    if r.expires_at and tonumber(r.expires_at) <= now then
      take_out(id, queue, ckey)
      call('HSET', K.run(pfx, id), 'error', '{"message":"not started within its TTL","type":"Expired"}')
      make_terminal(pfx, id, 'expired', now, fin_ttl, cap)
      return false
    end
    local versions = served_versions(served, job)
    if not versions then return false end
    if versions ~= true and not versions[r.version or ''] then return false end
    if r.needs or r.prefer then
      local wait = affinity_wait(r.needs, r.prefer, r.prefer_ms, ready_at, have, now)
      if wait > 0 then note_retry(wait) end
      if wait ~= 0 then return false end
    end
    local lim = limit_of(job)
    if lim[1] > 0 and call('SCARD', K.job_leases(pfx, job)) >= lim[1] then
      job_refused = true
      return false
    end
    if ckey and lim[2] > 0 and call('SCARD', K.key_leases(pfx, job, ckey)) >= lim[2] then return false end
    -- (the rate keys only for the limits the job has: most have none)
    local jrate = lim[3] > 0 and K.job_rate(pfx, job) or nil
    local krate = r.rate_key and lim[5] > 0 and K.key_rate(pfx, job, r.rate_key) or nil
    -- (waits of limits the whole job shares: every group's runs of the job are refused alike)
    local job_wait = jrate and rate_wait(jrate, lim[3], lim[4], now) or 0
    if lim.pool or lim.srate then
      local shared = shared_wait(pfx, lim, now)
      if not shared then
        job_refused = true
        return false
      end
      job_wait = math.max(job_wait, shared)
    end
    local wait = krate and math.max(job_wait, rate_wait(krate, lim[5], lim[6], now)) or job_wait
    if wait > 0 then
      note_retry(wait)
      job_refused = job_wait > 0
      return false
    end
    if jrate then rate_take(jrate, lim[3], lim[4], now) end
    if krate then rate_take(krate, lim[5], lim[6], now) end
    if lim.srate then shared_take(pfx, lim, now) end

    -- (tonumber only of what is there: each costs a strtod)
    local attempt = r.attempt and tonumber(r.attempt) + 1 or 1
    take_out(id, queue, ckey)
    if r.adm then  -- started: no longer counts against max_queued (includes/admission.lua)
      adm_leave(pfx, id, job, queue, r.adm)
      call('HDEL', K.run(pfx, id), 'adm')
    end
    local charged = r.charged and tonumber(r.charged) + 1 or 1
    local token = lease_run(pfx, id, job, ckey, node, attempt, charged, ttl, now, lim, r.tl, leases)
    -- one claimed run: CLAIMED_SIZE values placed by name (includes/claim_reply.lua)
    local at = #out
    out[at + CLAIMED.run_id] = id
    out[at + CLAIMED.token] = token
    out[at + CLAIMED.attempt] = attempt
    out[at + CLAIMED.job] = job
    out[at + CLAIMED.input] = 'null'  -- (read with the others at the end)
    input_at[#input_at + 1] = at + CLAIMED.input
    input_keys[#input_keys + 1] = K.input(pfx, id)
    out[at + CLAIMED.timeout_ms] = r.timeout_ms
    out[at + CLAIMED.ready_at_ms] = ready_at or now
    out[at + CLAIMED.metadata] = r.metadata or false
    out[at + CLAIMED.tags] = r.tags or false
    -- the record notes when it has step records (sat_steps): no lookup of the steps hash
    out[at + CLAIMED.step_count] = r.sat_steps and 1 or 0
    weight = r.fairness_weight and tonumber(r.fairness_weight) or 1
    return true
  end

  local got = 0
  local nq = #queues
  offset = offset % math.max(nq, 1)
  for qi = 0, nq - 1 do
    if got >= want then break end
    local queue = queues[((qi + offset) % nq) + 1]
    local gk = K.groups(pfx, queue)
    local ngroups = call('ZCARD', gk)
    -- with one group there is nobody to be fair to: take runs in order
    local per_visit = (ngroups <= 1) and want or 1
    local barren = 0
    local visits = 0
    -- A visit that yields nothing because a limit of its runs' whole job refused them (concurrency,
    -- rate, a shared pool or rate) is no turn of the group's: that refuses every group's runs of the
    -- job alike. Such a group goes to the back for the rest of this claim (the other groups get their
    -- visits) and takes its place in line back at the end, unless a later visit took a run from it.
    -- Else a limited job rotated every group past the one it had just served, and that one, first
    -- again, took every turn.
    local places = {}
    while got < want and visits < scan and barren < ngroups do
      local head = call('ZRANGE', gk, 0, 0, 'WITHSCORES')
      if #head == 0 then break end
      local g = head[1]
      visits = visits + 1
      job_refused = false
      -- to the back of the line, whether or not it yields a run this time
      call('ZADD', gk, call('INCR', K.group_turns(pfx, queue)), g)
      local kk = group_set(pfx, queue, g)
      -- a lone group is scanned deeper (up to `scan` entries): runs of limited or unserved
      -- jobs at its head must not hide runnable runs behind them. It is read in two windows:
      -- first just past what is still wanted (its head runs are usually claimable: reading
      -- `scan` ids for a claim of a few cost more than the claim), then the rest of the depth
      -- only when that window was used up and the claim is still short
      local lone = ngroups <= 1
      local depth = lone and math.min(scan, want - got + LONE_SLACK) or per_visit + 2
      local window = call('ZRANGE', kk, 0, depth - 1)
      local ids = with_aged_first(pfx, kk, window, now, aging_ms or 0)
      if #ids == 0 then
        call('ZREM', gk, g)
        ngroups = ngroups - 1
      else
        local took = 0
        local function take_from(list)
          for _, id in ipairs(list) do
            if took >= per_visit or got >= want then return end
            if try_claim(queue, gk, g, id) then
              took = took + 1
              got = got + 1
            end
          end
        end
        removed = 0
        take_from(ids)
        if lone and got < want and #window == depth and depth < scan then
          -- the first window's removed entries moved the rest towards the head
          ready_removals(pfx, leaving)
          local from = depth - removed
          take_from(call('ZRANGE', kk, from, from + scan - depth - 1))
        end
        -- (a later visit reads this group again)
        ready_removals(pfx, leaving)
        if took == 0 then barren = barren + 1 else barren = 0 end
        if took > 0 and ngroups > 1 then weighted_turn(gk, g, tonumber(head[2]), weight) end
        if took > 0 or not job_refused then
          places[g] = nil  -- (this visit's move stands)
        elseif places[g] == nil then
          places[g] = head[2]
        end
        ngroups = call('ZCARD', gk)
      end
    end
    for g, place in pairs(places) do call('ZADD', gk, 'XX', place, g) end
  end
  ready_removals(pfx, leaving)
  groups_pruned(pfx, emptied)
  add_leases(pfx, leases)
  for i = 1, #input_keys, VARIADIC_MOST do
    local values = call('MGET', unpack(input_keys, i, math.min(i + VARIADIC_MOST - 1, #input_keys)))
    for j = 1, #values do
      if values[j] then out[input_at[i + j - 1]] = values[j] end
    end
  end
  return out, retry_in
end

-- Waiting nodes. A node whose claim found less work than it had room for
-- registers as waiting (waiter:<node>, expiring unless renewed by its next
-- idle claim) with its claim arguments, listed in waiters:<queue> for each
-- queue it serves. runs_create then leases new runs to it at once and pushes
-- them to handoff:<node>, which the node blocks on: a pickup needs no claim
-- round trip. handed counts the runs pushed to each node, so that a node's
-- own claims never take more than its free slots minus runs still in transit.
-- A registration is the JSON array {room, scan, queues, jobs, lease TTL, finished
-- TTL, index cap, labels, aging ms, handed}: its last value, the node's handed
-- count when it registered, makes it kept. Each push then counts its room down
-- (room_left) and tells the node the room left, and the node need not register
-- again after every run. One written without that value (by a node of an
-- earlier version) is used up by the first push, which has no room in it: the
-- entry stays the two values such a node reads.
local HANDOFF_TRIES = 3

local function waiter_register(pfx, node, want, scan, queues_csv, jobs_csv, ttl, fin_ttl, cap, reg_ttl, labels_csv,
    aging_ms, handed)
  call('SET', K.waiter(pfx, node), cjson.encode({want, scan, queues_csv, jobs_csv, ttl, fin_ttl, cap, labels_csv,
    aging_ms, handed}),
    'PX', reg_ttl)
  for q in string.gmatch(queues_csv, '[^,]+') do call('SADD', K.waiters(pfx, q), node) end
end

-- The room a kept registration ``w`` has left once ``handed`` runs were handed to its node in all:
-- its room less the runs handed since it registered.
local function room_after(w, handed)
  return w[1] - (handed - w[10])
end

-- The room registration ``w`` of ``node`` has left now (an earlier version's: its room).
local function room_left(pfx, node, w)
  if w[10] == nil then return w[1] end
  return room_after(w, tonumber(call('HGET', K.handed(pfx), node) or '0'))
end

-- Runs leased to a waiting node (registration ``w``) are counted as handed (the node counts them
-- received when it takes them). Returns the room its registration has left, nil when the
-- registration is used up: one of an earlier version (no handed count) always, a kept one once
-- no room is left.
local function take_handoff(pfx, node, runs, w)
  local handed = call('HINCRBY', K.handed(pfx), node, #runs / CLAIMED_SIZE)
  local left = w[10] ~= nil and room_after(w, handed) or 0
  if left > 0 then return left end
  call('DEL', K.waiter(pfx, node))
  return w[10] ~= nil and 0 or nil
end

-- Push runs leased to a waiting node (registration ``w``) to its hand-off list: {time, runs} when
-- the push uses an earlier version's registration up, {time, runs, room left} otherwise.
local function push_handoff(pfx, node, runs, ttl, now, w)
  local entry = {int_text(now), runs}  -- (the time as text: see int_text)
  entry[3] = take_handoff(pfx, node, runs, w)
  local hk = K.handoff(pfx, node)
  call('RPUSH', hk, cjson.encode(entry))
  -- a node that died after registering never pops: its leases are reaped, and
  -- the list outlives them (by a minute: the reaper may run late when no other
  -- node was alive as they expired) so the reaper can tell they were never taken
  call('PEXPIRE', hk, ttl * 2 + 60000)
end

-- True when run ``id`` still waits in ``node``'s hand-off list (the node never took it).
local function never_received(pfx, node, id)
  local needle = '"' .. id .. '"'
  for _, entry in ipairs(call('LRANGE', K.handoff(pfx, node), 0, -1)) do
    if string.find(entry, needle, 1, true) then return true end
  end
  return false
end

-- Up to ``most`` of (at most HANDOFF_TRIES random) nodes registered as waiting
-- for ``queue``, each {node, its registration}; entries whose registration
-- expired (the node went away or stopped waiting) are removed on the way.
local function live_waiters(pfx, queue, most)
  local wk = K.waiters(pfx, queue)
  local live = {}
  for _, node in ipairs(call('SRANDMEMBER', wk, HANDOFF_TRIES)) do
    if #live >= most then break end
    local raw = call('GET', K.waiter(pfx, node))
    if raw then live[#live + 1] = {node, cjson.decode(raw)} else call('SREM', wk, node) end
  end
  return live
end

-- A waiting node that may take new runs of ``queue`` directly, without the
-- ready set: only when the queue has no ready runs (nothing to go before
-- them) and is not paused. ``nodes`` holds each node's state for the whole
-- call, so a node waiting on several queues is never given more than its room.
local function direct_waiter(pfx, queue, nodes, caller)
  if call('ZCARD', K.groups(pfx, queue)) > 0 then return false end
  if call('SISMEMBER', K.paused_queues(pfx), queue) == 1 then return false end
  local live = {}
  -- the calling node first, when it waits for this queue: no hand-off list between
  if caller ~= '' and call('SISMEMBER', K.waiters(pfx, queue), caller) == 1 then
    local raw = call('GET', K.waiter(pfx, caller))
    if raw then live = {{caller, cjson.decode(raw)}} end
  end
  if #live == 0 then live = live_waiters(pfx, queue, 1) end
  if #live == 0 then return false end
  local node, w = live[1][1], live[1][2]
  if not nodes[node] then
    nodes[node] = {node = node, left = room_left(pfx, node, w), ttl = w[5], served = served_list(w[4]), runs = {},
      registration = w}
  end
  call('SADD', K.queues(pfx), queue)  -- known queues, as when a run enters a ready set
  return nodes[node]
end

-- Hand ready runs of ``queue`` to (at most HANDOFF_TRIES of) its waiting
-- nodes. Returns true when runs remain ready (other nodes need a wake-up).
local function hand_off(pfx, queue, now)
  local gk = K.groups(pfx, queue)
  -- (claim_runs skips the queue if it is paused)
  for _, waiter in ipairs(live_waiters(pfx, queue, HANDOFF_TRIES)) do
    local node, w = waiter[1], waiter[2]
    local left = room_left(pfx, node, w)
    local runs = {}
    if left > 0 then
      HANDING_OFF = true
      runs = claim_runs(pfx, node, w[5], left, w[2], w[3], w[4], 0, w[6], w[7], now, w[8], w[9])
      HANDING_OFF = false
    end
    if #runs > 0 then
      -- a registration without room left goes with its push; one of an earlier version with any
      -- push (the node registers again when it next finds no work; its waiters:<queue> entries stay)
      push_handoff(pfx, node, runs, w[5], now, w)
      if call('ZCARD', gk) == 0 then return false end
    end
  end
  return call('ZCARD', gk) > 0
end
