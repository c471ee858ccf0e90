-- Worker labels (runtime/affinity.py): a run may require labels of the node
-- that leases it (record field needs, "k=v,k=v") and prefer others (prefer,
-- for prefer_ms after it became ready; then any node may lease it). Every
-- node offers baton.node=<its id> besides its configured labels (sticky
-- children). A run with neither field costs nothing here.

-- The labels a node offers, as a set of "k=v", from its "k=v,k=v" setting.
local function node_labels(labels_csv, node)
  local have = {['baton.node=' .. node] = true}
  for kv in string.gmatch(labels_csv or '', '[^,]+') do have[kv] = true end
  return have
end

local function labels_met(wanted_csv, have)
  for kv in string.gmatch(wanted_csv, '[^,]+') do
    if not have[kv] then return false end
  end
  return true
end

-- Whether a node offering ``have`` may lease the run now: 0 yes, -1 never (a
-- required label is missing), n > 0 not for n ms (a preferred node may still take it).
local function affinity_wait(needs, prefer, prefer_ms, ready_at, have, now)
  if needs and not labels_met(needs, have) then return -1 end
  if prefer and not labels_met(prefer, have) then
    local left = tonumber(ready_at or now) + tonumber(prefer_ms or '0') - now
    if left > 0 then return left end
  end
  return 0
end

-- Whether a new run asks for labels (its extra fields, JSON text): such a run
-- is never leased straight to a waiting node by runs_create. Conservative: a
-- false positive only sends the run through its ready set.
local function asks_labels(extra_json)
  return extra_json ~= '' and (string.find(extra_json, '"needs"', 1, true) ~= nil
    or string.find(extra_json, '"prefer"', 1, true) ~= nil)
end
