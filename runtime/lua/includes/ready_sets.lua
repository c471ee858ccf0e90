-- ready_sets: the sets queued runs wait in (one per group of a queue, and the queue's list of
-- groups), and the helpers that write many runs' entries at once. Included by common, where it
-- stands: what follows it there builds on these.
-- Queued runs are ordered per group: the runs of a queue without a
-- concurrency key in ready:<queue>, those with key k in kready:<queue>|<k>
-- (and, for counts and age, in the queue's keyed index kidx:<queue>). The
-- queue's groups ('' for unkeyed) rotate in groups:<queue> so the claim
-- serves keys fairly. Unkeyed runs, the common case, cost one entry.
local function group_set(pfx, queue, g)
  if g == '' then return K.ready(pfx, queue) end
  return K.keyed_group(pfx, queue, g)
end

local function ready_add(pfx, id, queue, ckey, score)
  local g = ckey or ''
  call('ZADD', group_set(pfx, queue, g), score, id)
  if g ~= '' then call('ZADD', K.keyed_ready(pfx, queue), score, id) end
  local gk = K.groups(pfx, queue)
  if not call('ZSCORE', gk, g) then
    call('ZADD', gk, call('INCR', K.group_turns(pfx, queue)), g)
    call('SADD', K.queues(pfx), queue)
  end
end

-- Most arguments call_variadic passes in one command (an even number: ZADD takes pairs); a few
-- thousand values are what unpack may safely put on Lua's stack.
local VARIADIC_MOST = 1000

-- `cmd` (ZADD, ZREM, ...) on `key` with the arguments of many runs at once: one command per
-- VARIADIC_MOST of them instead of one per run (each call from Lua costs Redis about as much as
-- a small command does).
local function call_variadic(cmd, key, args)
  local n = #args
  for i = 1, n, VARIADIC_MOST do call(cmd, key, unpack(args, i, math.min(i + VARIADIC_MOST - 1, n))) end
end

-- Take the ids ready_remove(..., leaving) collected (queue -> group -> ids) out of their sets,
-- and forget them.
local function ready_removals(pfx, leaving)
  for queue, groups in pairs(leaving) do
    for g, ids in pairs(groups) do
      call_variadic('ZREM', group_set(pfx, queue, g), ids)
      if g ~= '' then call_variadic('ZREM', K.keyed_ready(pfx, queue), ids) end
    end
    leaving[queue] = nil
  end
end

-- t[k], created (empty) when missing: the lists and tables a call collects into, to write
-- them once at its end.
local function table_at(t, k)
  local v = t[k]
  if not v then
    v = {}
    t[k] = v
  end
  return v
end

-- Append the values after `k` to the list t[k] (created when missing).
local function append_at(t, k, a, b)
  local list = table_at(t, k)
  list[#list + 1] = a
  if b ~= nil then list[#list + 1] = b end
end

-- `emptied` (optional): a table collecting the groups to check for emptiness
-- later (groups_pruned), so a claim of many runs checks each group once (queue -> group -> true).
-- `leaving` (optional, with `emptied`): a table collecting the ids to take out of each group
-- (queue -> group -> ids), for the caller to remove with ready_removals before it reads those
-- sets again or returns. Neither builds a key name per run.
local function ready_remove(pfx, id, queue, ckey, emptied, leaving)
  local g = ckey or ''
  if leaving then
    append_at(table_at(leaving, queue), g, id)
  else
    call('ZREM', group_set(pfx, queue, g), id)
    if g ~= '' then call('ZREM', K.keyed_ready(pfx, queue), id) end
  end
  if emptied then
    table_at(emptied, queue)[g] = true
  elseif call('ZCARD', group_set(pfx, queue, g)) == 0 then
    call('ZREM', K.groups(pfx, queue), g)
  end
end

-- Drop the groups left empty by ready_remove(..., emptied).
local function groups_pruned(pfx, emptied)
  for queue, groups in pairs(emptied) do
    for g in pairs(groups) do
      if call('ZCARD', group_set(pfx, queue, g)) == 0 then call('ZREM', K.groups(pfx, queue), g) end
    end
  end
end
