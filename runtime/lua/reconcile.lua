--[[ reconcile: check that the exact indices of a partition agree with the run
  records, repair what does not, and count it (the drift, expected 0):
  every leased run is executing and in each lease set its record names (cc);
  every member of a lease set (per job, per key, per pool) is leased; every
  member of a queue's ordered sets is queued, in the right set, and (when
  keyed) in the queue's keyed index, and back.
  KEYS[1] partition leased set (ZSET) - pins the slot
  ARGV[1] partition key prefix
  Returns: {drift total, leased drift, concurrency drift, ready drift} ]]
--@include keys
--@include common
-- Put a leased run back into the lease sets its record names (cc) that lost
-- it; returns how many did (reconcile's drift).
local function lease_sets_mended(pfx, id, job, ckey, cc)
  local flags, sets = listed_lease_sets(pfx, job, ckey, cc)
  if string.find(flags, 'j', 1, true) then sets[#sets + 1] = K.job_leases(pfx, job) end
  local mended = 0
  for _, set in ipairs(sets) do
    if call('SADD', set, id) == 1 then mended = mended + 1 end
  end
  if mended > 0 then hold_lease_sets(pfx, id, job, ckey, cc) end
  return mended
end

local pfx = ARGV[1]
local leased_drift, cc_drift, ready_drift = 0, 0, 0
for _, id in ipairs(call('ZRANGEBYSCORE', KEYS[1], LEASED_FROM, LEASED_TO)) do  -- (not the anchor)
  local r = call('HMGET', K.run(pfx, id), 'status', 'job', 'concurrency_key', 'cc')
  if r[1] ~= 'executing' then
    call('ZREM', KEYS[1], id)
    leased_drift = leased_drift + 1
  elseif r[4] then
    cc_drift = cc_drift + lease_sets_mended(pfx, id, r[2], r[3], r[4])
  end
end
-- the lease sets: per-key ones are listed in lease_sets; per-job ones belong to
-- the jobs with limits (older versions listed those too)
local sets, seen = {}, {}
local function visit(set)
  if not seen[set] then
    seen[set] = true
    sets[#sets + 1] = set
  end
end
for _, set in ipairs(call('SMEMBERS', K.lease_sets(pfx))) do visit(set) end
for _, hash in ipairs({K.jobs(pfx), K.jobs_override(pfx)}) do
  for _, job in ipairs(call('HKEYS', hash)) do visit(K.job_leases(pfx, job)) end
end
for _, set in ipairs(sets) do
  for _, id in ipairs(call('SMEMBERS', set)) do
    if not call('ZSCORE', KEYS[1], id) then
      call('SREM', set, id)
      cc_drift = cc_drift + 1
    end
  end
  if call('SCARD', set) == 0 then call('SREM', K.lease_sets(pfx), set) end
end
for _, queue in ipairs(call('SMEMBERS', K.queues(pfx))) do
  local rq, ki = K.ready(pfx, queue), K.keyed_ready(pfx, queue)
  -- the unkeyed set holds queued runs without a key only
  for _, id in ipairs(call('ZRANGE', rq, 0, -1)) do
    local r = call('HMGET', K.run(pfx, id), 'status', 'concurrency_key')
    if r[1] ~= 'queued' or r[2] then
      local score = call('ZSCORE', rq, id)
      call('ZREM', rq, id)
      if r[1] == 'queued' then ready_add(pfx, id, queue, r[2], score) end
      ready_drift = ready_drift + 1
    end
  end
  -- the keyed index holds queued runs with a key, each also in its key's set
  for _, id in ipairs(call('ZRANGE', ki, 0, -1)) do
    local r = call('HMGET', K.run(pfx, id), 'status', 'concurrency_key')
    if r[1] ~= 'queued' or not r[2] then
      call('ZREM', ki, id)
      if r[1] == 'queued' then ready_add(pfx, id, queue, nil, call('ZSCORE', ki, id) or 0) end
      ready_drift = ready_drift + 1
    elseif not call('ZSCORE', group_set(pfx, queue, r[2]), id) then
      ready_add(pfx, id, queue, r[2], call('ZSCORE', ki, id))
      ready_drift = ready_drift + 1
    end
  end
end
return {leased_drift + cc_drift + ready_drift, leased_drift, cc_drift, ready_drift}
