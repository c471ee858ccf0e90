-- Flow control the claim shares with every job or group that asks for it (see
-- includes/claim.lua, which calls these; needs the common include): GCRA rate
-- limits, named limits shared by jobs (pools, shared rates), fairness weights
-- and priority aging. Jobs and groups that use none cost no Redis call here.

-- GCRA with no burst: one run every window/n ms. Returns ms to wait (0 = allowed now).
local function rate_wait(key, n, window_ms, now)
  if n <= 0 then return 0 end
  local tat = tonumber(call('GET', key) or '0')
  if tat > now then return tat - now end
  return 0
end

local function rate_take(key, n, window_ms, now)
  if n <= 0 then return end
  local period = window_ms / n
  local tat = math.max(tonumber(call('GET', key) or '0'), now) + period
  call('SET', key, tostring(tat), 'PX', math.ceil(period * 2) + 1000)
end

-- The named limits a job's table entry names after its own six numbers:
-- "...,<pool>,<shared rate>" ('' = none), into lim.pool and lim.srate.
local function shared_names(lim, spec)
  local pool, srate = string.match(spec, '^[^,]*,[^,]*,[^,]*,[^,]*,[^,]*,[^,]*,([^,]*),?([^,]*)')
  if pool and pool ~= '' then lim.pool = pool end
  if srate and srate ~= '' then lim.srate = srate end
end

-- A named limit's values {pool size, rate n, rate window ms} (0 = none), the
-- runtime override winning over the code's; read once per script call.
local shared_values = {}  --@per-call
local function shared_limit(pfx, name)
  local v = shared_values[name]
  if not v then
    local spec = call('HGET', K.shared_limits_override(pfx), name) or call('HGET', K.shared_limits(pfx), name) or ''
    v = {0, 0, 0}
    local i = 1
    for part in string.gmatch(spec .. ',', '([^,]*),') do
      if i <= 3 then v[i] = tonumber(part) or 0 end
      i = i + 1
    end
    shared_values[name] = v
  end
  return v
end

-- For a job with named limits: false when its pool is full (exact: the pool's
-- set of leased run ids), else the ms until its shared rate lets a run go (0 = now).
local function shared_wait(pfx, lim, now)
  if lim.pool then
    local size = shared_limit(pfx, lim.pool)[1]
    if size > 0 and call('SCARD', K.pool_leases(pfx, lim.pool)) >= size then return false end
  end
  if not lim.srate then return 0 end
  local v = shared_limit(pfx, lim.srate)
  return rate_wait(K.shared_rate(pfx, lim.srate), v[2], v[3], now)
end

-- A run of a job with a shared rate starts: the rate's next slot is taken.
local function shared_take(pfx, lim, now)
  local v = shared_limit(pfx, lim.srate)
  rate_take(K.shared_rate(pfx, lim.srate), v[2], v[3], now)
end

-- Weighted fairness. Groups rotate in groups:<queue> by turn numbers (whole
-- numbers from a counter); a visit moves the group to the back. A run that
-- carries a fairness weight w > 1 gives its group w turns in a row: the group
-- goes back to the front, with the turns it has used noted in the fraction of
-- its score (turn + used / w stays below the next group's turn), until it has
-- had w. ``head`` is the group's score before the visit.
local function weighted_turn(gk, g, head, weight)
  if weight <= 1 then return end
  local turn = math.floor(head)
  local used = math.floor((head - turn) * weight + 0.5) + 1
  if used < weight then call('ZADD', gk, turn + used / weight, g) end
end

-- Priority aging: a queued run counts one priority level higher per
-- ``aging_ms`` it has waited since it became ready. Runs of a group are
-- ordered by priority then age, so the candidates are the oldest run of each
-- priority level present: returns those whose aged level is higher than the
-- head's, highest first (ties: higher priority first). At most AGING_LEVELS
-- levels below the head are looked at.
local READY_BAND = 4398046511104  -- ready_score's multiplier: one band per priority level
local AGING_LEVELS = 16
local function aged_ahead(pfx, kk, now, aging_ms)
  local head = call('ZRANGE', kk, 0, 0, 'WITHSCORES')
  if #head == 0 then return {} end
  local function aged(id, band)
    local r = call('HMGET', K.run(pfx, id), 'ready_at', 'created_at')  -- (no ready_at: ready since created)
    local ready = tonumber(r[1] or r[2] or now)
    return (1000 - band) + math.floor(math.max(now - ready, 0) / aging_ms)
  end
  local band = math.floor(tonumber(head[2]) / READY_BAND)
  local head_level = aged(head[1], band)
  local ahead = {}
  for i = 1, AGING_LEVELS do
    local nxt = call('ZRANGEBYSCORE', kk, (band + 1) * READY_BAND, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
    if #nxt == 0 then break end
    band = math.floor(tonumber(nxt[2]) / READY_BAND)
    local level = aged(nxt[1], band)
    if level > head_level then ahead[#ahead + 1] = {level, i, nxt[1]} end
  end
  table.sort(ahead, function(a, b) return a[1] > b[1] or (a[1] == b[1] and a[2] < b[2]) end)
  return ahead
end

-- The candidate ids of a group visit with the runs aging put ahead of its head first.
local function with_aged_first(pfx, kk, ids, now, aging_ms)
  if aging_ms <= 0 then return ids end
  local ahead = aged_ahead(pfx, kk, now, aging_ms)
  if #ahead == 0 then return ids end
  local out, first = {}, {}
  for _, a in ipairs(ahead) do
    out[#out + 1] = a[3]
    first[a[3]] = true
  end
  for _, id in ipairs(ids) do
    if not first[id] then out[#out + 1] = id end
  end
  return out
end
