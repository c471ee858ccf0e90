--[[ common: helpers shared by the run scripts. Every key is built from the
  partition prefix (ARGV[1]), so every key a script touches carries the same
  hash tag and lives in one Redis Cluster slot. ]]
local call = redis.call

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
  return (1000 - tonumber(priority)) * 4398046511104 + (tonumber(seq) % 4398046511104)
end

local function next_seq(pfx, n)
  return call('INCRBY', pfx .. 'seq', n or 1)
end

-- Keep a terminal-status index bounded by age and by count; runs dropped from
-- the index by the cap are deleted with it so no key outlives its index.
local function trim_index(pfx, index, now, ttl_ms, cap)
  call('ZREMRANGEBYSCORE', index, '-inf', now - ttl_ms)
  local n = call('ZCARD', index)
  if n > cap then
    local gone = call('ZRANGE', index, 0, n - cap - 1)
    call('ZREMRANGEBYRANK', index, 0, n - cap - 1)
    for _, gid in ipairs(gone) do
      local project = call('HGET', pfx .. 'run:' .. gid, 'project') or 'default'
      call('ZREM', pfx .. 'runs:' .. project, gid)
      call('DEL', pfx .. 'run:' .. gid, pfx .. 'in:' .. gid, pfx .. 'ev:' .. gid, pfx .. 'steps:' .. gid, pfx .. 'cp:' .. gid,
        pfx .. 'children:' .. gid, pfx .. 'wait:' .. gid, pfx .. 'rec:' .. gid, pfx .. 'chunks:' .. gid)
    end
  end
end

-- Queued runs are ordered per group: the runs of a queue without a
-- concurrency key in ready:<queue>, those with key k in kready:<queue>|<k>
-- (and, for counts and age, in the queue's keyed index kidx:<queue>). The
-- queue's groups ('' for unkeyed) rotate in groups:<queue> so the claim
-- serves keys fairly. Unkeyed runs, the common case, cost one entry.
local function group_set(pfx, queue, g)
  if g == '' then return pfx .. 'ready:' .. queue end
  return pfx .. 'kready:' .. queue .. '|' .. g
end

local function ready_add(pfx, id, queue, ckey, score)
  local g = ckey or ''
  call('ZADD', group_set(pfx, queue, g), score, id)
  if g ~= '' then call('ZADD', pfx .. 'kidx:' .. queue, score, id) end
  local gk = pfx .. 'groups:' .. queue
  if not call('ZSCORE', gk, g) then
    call('ZADD', gk, call('INCR', pfx .. 'grr:' .. queue), g)
    call('SADD', pfx .. 'queues', queue)
  end
end

local function ready_remove(pfx, id, queue, ckey)
  local g = ckey or ''
  local gs = group_set(pfx, queue, g)
  call('ZREM', gs, id)
  if g ~= '' then call('ZREM', pfx .. 'kidx:' .. queue, id) end
  if call('ZCARD', gs) == 0 then call('ZREM', pfx .. 'groups:' .. queue, g) end
end

-- Append one event to the run's timeline (a capped stream; expires with the run).
local EVENTS_MAX = 1000
local function add_event(pfx, id, kind, data, now)
  call('XADD', pfx .. 'ev:' .. id, 'MAXLEN', '~', EVENTS_MAX, '*', 'type', kind, 'data', data, 'ts', now)
end

-- Keys that belong to one run besides its record; they expire with it. Most
-- runs have only a timeline, so the others are noted on the record when first
-- written (sat_<name>) and only those are expired.
local SATELLITES = {'steps', 'cp', 'children', 'wait', 'rec', 'chunks'}
local function mark_satellite(pfx, id, name)
  call('HSETNX', pfx .. 'run:' .. id, 'sat_' .. name, '1')
end
local function satellite_keys(pfx, id)
  local keys = {pfx .. 'ev:' .. id, pfx .. 'in:' .. id}
  local fields = {}
  for i, name in ipairs(SATELLITES) do fields[i] = 'sat_' .. name end
  local marks = call('HMGET', pfx .. 'run:' .. id, unpack(fields))
  for i, name in ipairs(SATELLITES) do
    if marks[i] then keys[#keys + 1] = pfx .. name .. ':' .. id end
  end
  return keys
end

-- Put a run (back) into its queue's ready set.
local function make_ready(pfx, id, queue, priority, now)
  local rk = pfx .. 'run:' .. id
  call('HSET', rk, 'status', 'queued', 'updated_at', now, 'ready_at', now)
  ready_add(pfx, id, queue, call('HGET', rk, 'concurrency_key'), ready_score(priority, next_seq(pfx)))
end

-- Write the record of a durable wait step (event arrived, or timed out).
-- data is JSON text written as is (never decoded, so numbers stay exact).
local function complete_wait_step(pfx, id, step, index, started, data, status, now)
  local rec = '{"name":' .. cjson.encode(step) .. ',"index":' .. (index or 'null') .. ',"status":'
    .. cjson.encode(status) .. ',"output":' .. data .. ',"error":null,"started_at":' .. (started or now)
    .. ',"completed_at":' .. now .. '}'
  call('HSET', pfx .. 'steps:' .. id, step, rec)
  mark_satellite(pfx, id, 'steps')
  add_event(pfx, id, 'step', rec, now)
end

-- Park a run in status paused (index {p}:paused); it is never leased until
-- run_resume puts it back. `from` is the status it left; `due` the time a
-- delayed run was due ('' when none).
local function park_paused(pfx, id, from, due, now, why)
  local rk = pfx .. 'run:' .. id
  call('HSET', rk, 'status', 'paused', 'paused_at', now, 'paused_from', from, 'updated_at', now)
  if due and due ~= '' then call('HSET', rk, 'paused_due', due) else call('HDEL', rk, 'paused_due') end
  call('HDEL', rk, 'pause_requested')
  call('ZADD', pfx .. 'paused', now, id)
  add_event(pfx, id, 'status', '{"status":"paused","from":' .. cjson.encode(from) .. ',"reason":'
    .. cjson.encode(why) .. '}', now)
end

-- Wake a waiting run: clear its wait and queue it again (or park it, when a
-- pause was requested while it waited).
local function resume(pfx, id, now, why)
  local rk = pfx .. 'run:' .. id
  local r = call('HMGET', rk, 'status', 'queue', 'priority', 'wait_kind', 'wait_key', 'pause_requested')
  if r[1] ~= 'waiting' then return false end
  call('ZREM', pfx .. 'waiting', id)
  if r[4] == 'event' and r[5] then call('SREM', pfx .. 'evw:' .. r[5], id) end
  call('HDEL', rk, 'wait_kind', 'wait_key', 'wait_step', 'wait_index', 'wait_started_at', 'wait_until')
  if r[6] == '1' then
    park_paused(pfx, id, 'waiting', '', now, why)
    return true
  end
  make_ready(pfx, id, r[2], r[3] or '0', now)
  add_event(pfx, id, 'status', '{"status":"queued","reason":' .. cjson.encode(why) .. '}', now)
  return true
end

-- Move a run to a terminal status: record time, index, expire the record, and
-- wake a parent that waits for it as a child.
local function make_terminal(pfx, id, status, now, ttl_ms, cap)
  local rk = pfx .. 'run:' .. id
  call('HSET', rk, 'status', status, 'finished_at', now, 'updated_at', now)
  call('HDEL', rk, 'lease_token', 'lease_node', 'lease_expires_at', 'next_retry_at')
  local index = pfx .. 'st:' .. status
  call('ZADD', index, now, id)
  add_event(pfx, id, 'status', '{"status":' .. cjson.encode(status) .. '}', now)
  call('PEXPIRE', rk, ttl_ms)
  for _, k in ipairs(satellite_keys(pfx, id)) do call('PEXPIRE', k, ttl_ms) end
  trim_index(pfx, index, now, ttl_ms, cap)
  local r = call('HMGET', rk, 'parent_id', 'queue')
  -- the queue's throughput: runs finished per minute, one hash per hour (fields = epoch minutes), kept
  -- two hours so the last 60 minutes are always readable (runtime/queues.py reads it)
  local minute = math.floor(now / 60000)
  local tk = pfx .. 'tput:' .. (r[2] or 'default') .. ':' .. math.floor(minute / 60)
  if call('HINCRBY', tk, minute, 1) == 1 then call('PEXPIRE', tk, 7260000) end
  local parent = r[1]
  if parent then
    local wk = pfx .. 'wait:' .. parent
    if call('SREM', wk, id) == 1 and call('SCARD', wk) == 0 then
      resume(pfx, parent, now, 'children finished')
    end
  end
end

-- Drop a run's lease and its places in the concurrency sets.
local function release_lease(pfx, id, job, ckey)
  call('ZREM', pfx .. 'leased', id)
  call('SREM', pfx .. 'cc:j:' .. job, id)
  if ckey and ckey ~= '' then
    local kset = pfx .. 'cc:k:' .. job .. '|' .. ckey
    call('SREM', kset, id)
    -- per-key sets come and go with their keys; keep the set of names small
    if call('SCARD', kset) == 0 then call('SREM', pfx .. 'ccsets', kset) end
  end
end
