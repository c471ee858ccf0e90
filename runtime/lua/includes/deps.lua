--[[ deps: declarative dependencies (depends_on) between runs of one partition.
  Included by common (before make_terminal, which settles a finished run's
  dependents), so every script that ends runs honours them.
  A dependent waits in status waiting (wait_kind 'parents', in the waiting set
  with no deadline) while K.deps_pending(id) holds parents not yet finished;
  each parent lists its dependents in K.dependents(parent) (dependent -> JSON
  [policy, name]). A parent's terminal status settles each edge once (the SREM
  from the pending set is the "once"): completed copies the parent's output to
  K.parent_outputs(dependent) under the edge's name; any other status applies
  the policy: 'fail' fails the dependent, 'cancel' cancels it, 'ignore' counts
  the parent as done. The last pending parent queues the dependent. ]]

-- defined in common.lua after this include: settling a parent may end a dependent,
-- whose own dependents settle in turn
local make_terminal

-- The parents' statuses in order, or nil and the first parent with no record.
local function deps_statuses(pfx, edges)
  local st = {}
  for i, e in ipairs(edges) do
    st[i] = call('HGET', K.run(pfx, e[1]), 'status')
    if not st[i] then return nil, e[1] end
  end
  return st
end

-- What a finished parent (status st) does to a dependent under ``policy``:
-- 'done' (counts as finished), 'failed' or 'canceled' (the dependent ends so).
local function deps_verdict(st, policy)
  if st == 'completed' or policy == 'ignore' then return 'done' end
  if policy == 'cancel' then return 'canceled' end
  return 'failed'
end

local function deps_error(parent, st, verdict)
  return cjson.encode({message = 'parent run ' .. parent .. ' ended ' .. st,
    type = verdict == 'canceled' and 'Canceled' or 'ParentFailed'})
end

-- Settle one edge whose parent ended with status st; returns the verdict.
local function deps_edge(pfx, dep, parent, st, policy, name)
  if st == 'completed' then
    call('HSET', K.parent_outputs(pfx, dep), name, call('HGET', K.run(pfx, parent), 'output') or 'null')
    mark_satellite(pfx, dep, 'pout')
  end
  return deps_verdict(st, policy)
end

-- Attach a new run to its parents (runs_create, before the record is written).
-- Parents already finished count at once. Returns nil (nothing pending: the run
-- is created as without parents), 'waiting' (some parent pending), or
-- 'failed'/'canceled' and the error JSON.
local function deps_attach(pfx, id, edges, statuses)
  local pending = false
  for i, e in ipairs(edges) do
    local parent, policy, name, st = e[1], e[2], e[3], statuses[i]
    if TERMINAL[st] then
      local v = deps_edge(pfx, id, parent, st, policy, name)
      if v ~= 'done' then return v, deps_error(parent, st, v) end
    else
      call('SADD', K.deps_pending(pfx, id), parent)
      call('HSET', K.dependents(pfx, parent), id, cjson.encode({policy, name}))
      mark_satellite(pfx, parent, 'dents')
      pending = true
    end
  end
  if pending then
    mark_satellite(pfx, id, 'deps')
    return 'waiting'
  end
  return nil
end

-- A restart of a dependent still waiting: its copy `new` (already queued by
-- copy_run) waits for the parents the source still waited for instead.
local function deps_rewait(pfx, src, new, now)
  local edges = cjson.decode(call('HGET', K.run(pfx, src), 'depends_on') or '[]')
  local pending = K.deps_pending(pfx, src)
  local waits = false
  for _, e in ipairs(edges) do
    if call('SISMEMBER', pending, e[1]) == 1 then
      call('SADD', K.deps_pending(pfx, new), e[1])
      call('HSET', K.dependents(pfx, e[1]), new, cjson.encode({e[2], e[3]}))
      waits = true
    end
  end
  if not waits then return end
  local nk = K.run(pfx, new)
  local r = call('HMGET', nk, 'queue', 'concurrency_key')
  ready_remove(pfx, new, r[1], r[2])
  call('HSET', nk, 'status', 'waiting', 'wait_kind', 'parents', 'wait_started_at', now, 'updated_at', now,
    'depends_on', cjson.encode(edges))
  call('HDEL', nk, 'ready_at')
  mark_satellite(pfx, new, 'deps')
  call('ZADD', K.waiting(pfx), 1e15, new)
  add_event(pfx, new, 'status', '{"status":"waiting","kind":"parents"}', now)
end

-- No parent holds the dependent back: queue it, or, when it was triggered with a
-- delay or run_at still ahead, make it delayed until then.
local function deps_done(pfx, dep, now)
  local rk = K.run(pfx, dep)
  local r = call('HMGET', rk, 'scheduled_at', 'pause_requested')
  local due = tonumber(r[1] or '0') or 0
  if due <= now or r[2] == '1' then return resume(pfx, dep, now, 'parents finished') end
  call('ZREM', K.waiting(pfx), dep)
  call('HDEL', rk, 'wait_kind', 'wait_started_at')
  call('HSET', rk, 'status', 'delayed', 'updated_at', now)
  add_due(K.delayed(pfx), due, dep)
  add_event(pfx, dep, 'status', '{"status":"delayed","reason":"parents finished"}', now)
end

-- A parent ended with status st: settle its dependents (make_terminal calls this
-- when the parent's record notes dependents, sat_dents).
local function deps_release(pfx, parent, st, now, ttl_ms, cap)
  local dk = K.dependents(pfx, parent)
  local edges = call('HGETALL', dk)
  call('DEL', dk)
  for i = 1, #edges, 2 do
    local dep = edges[i]
    local e = cjson.decode(edges[i + 1])
    local pk = K.deps_pending(pfx, dep)
    -- a dependent canceled or deleted meanwhile keeps no pending set: nothing to do
    if call('SREM', pk, parent) == 1 then
      local r = call('HMGET', K.run(pfx, dep), 'status', 'wait_kind')
      if r[1] == 'waiting' and r[2] == 'parents' then
        local v = deps_edge(pfx, dep, parent, st, e[1], e[2])
        if v ~= 'done' then
          call('DEL', pk)
          call('ZREM', K.waiting(pfx), dep)
          call('HSET', K.run(pfx, dep), 'error', deps_error(parent, st, v))
          make_terminal(pfx, dep, v, now, ttl_ms, cap)
        elseif call('SCARD', pk) == 0 then
          deps_done(pfx, dep, now)
        end
      end
    end
  end
end
