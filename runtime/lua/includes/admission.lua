--[[ admission: max_queued, a cap on the runs of a job or queue that were
  admitted and have not started (queued, delayed, waiting for parents, paused
  before their first attempt). Included by common. The caps are in K.max_queued
  ("jo:<job>" a runtime override wins over "j:<job>", the code's; "q:<queue>");
  the runs they count are in K.admitted("j:<job>" | "q:<queue>"), and a run notes
  on its record (adm: 'j', 'q' or 'jq') which of those sets hold it, so it leaves
  exactly those when it is first leased (includes/claim.lua) or ends before
  starting (make_terminal). A run admitted while no cap was set is never counted. ]]

-- The caps of a job and queue {job cap, queue cap} (0 = none); `memo` caches them
-- for one script call (one HMGET per job and queue seen, none per run).
local function adm_limits(pfx, job, queue, memo)
  local mk = job .. '\0' .. queue
  local l = memo[mk]
  if l == nil then
    local r = call('HMGET', K.max_queued(pfx), 'jo:' .. job, 'j:' .. job, 'q:' .. queue)
    l = {tonumber(r[1] or r[2] or '0') or 0, tonumber(r[3] or '0') or 0}
    memo[mk] = l
  end
  return l
end

-- The scope a new run would overflow ("j:<job>=<cap>" or "q:<queue>=<cap>"), or nil.
local function adm_full(pfx, job, queue, l)
  if l[1] > 0 and call('SCARD', K.admitted(pfx, 'j:' .. job)) >= l[1] then return 'j:' .. job .. '=' .. l[1] end
  if l[2] > 0 and call('SCARD', K.admitted(pfx, 'q:' .. queue)) >= l[2] then return 'q:' .. queue .. '=' .. l[2] end
  return nil
end

-- Count an admitted run under the caps in force; returns its record's adm flags ('' = none).
local function adm_enter(pfx, id, job, queue, l)
  local flags = ''
  if l[1] > 0 then call('SADD', K.admitted(pfx, 'j:' .. job), id); flags = 'j' end
  if l[2] > 0 then call('SADD', K.admitted(pfx, 'q:' .. queue), id); flags = flags .. 'q' end
  return flags
end

-- The run started or ended: it no longer counts (flags: its record's adm field).
local function adm_leave(pfx, id, job, queue, flags)
  if string.find(flags, 'j', 1, true) then call('SREM', K.admitted(pfx, 'j:' .. job), id) end
  if string.find(flags, 'q', 1, true) then call('SREM', K.admitted(pfx, 'q:' .. queue), id) end
end
