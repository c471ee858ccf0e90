--[[ reconcile: check that the exact indices of a partition agree with the run
  records, repair what does not, and count it (the drift, expected 0):
  every leased run is executing; every member of a concurrency set (per job,
  per key) is leased; every queued-index member is queued and in its group.
  KEYS[1] partition leased set (ZSET) - pins the slot
  ARGV[1] partition key prefix
  Returns: {drift total, leased drift, concurrency drift, ready drift} ]]
--@include common
local pfx = ARGV[1]
local leased_drift, cc_drift, ready_drift = 0, 0, 0
for _, id in ipairs(call('ZRANGE', KEYS[1], 0, -1)) do
  if call('HGET', pfx .. 'run:' .. id, 'status') ~= 'executing' then
    call('ZREM', KEYS[1], id)
    leased_drift = leased_drift + 1
  end
end
for _, set in ipairs(call('SMEMBERS', pfx .. 'ccsets')) do
  for _, id in ipairs(call('SMEMBERS', set)) do
    if not call('ZSCORE', KEYS[1], id) then
      call('SREM', set, id)
      cc_drift = cc_drift + 1
    end
  end
  if call('SCARD', set) == 0 then call('SREM', pfx .. 'ccsets', set) end
end
for _, queue in ipairs(call('SMEMBERS', pfx .. 'queues')) do
  for _, id in ipairs(call('ZRANGE', pfx .. 'ready:' .. queue, 0, -1)) do
    local r = call('HMGET', pfx .. 'run:' .. id, 'status', 'concurrency_key')
    local kk = pfx .. 'kready:' .. queue .. '|' .. (r[2] or '')
    if r[1] ~= 'queued' then
      ready_remove(pfx, id, queue, r[2])
      ready_drift = ready_drift + 1
    elseif not call('ZSCORE', kk, id) then
      ready_add(pfx, id, queue, r[2], call('ZSCORE', pfx .. 'ready:' .. queue, id))
      ready_drift = ready_drift + 1
    end
  end
end
return {leased_drift + cc_drift + ready_drift, leased_drift, cc_drift, ready_drift}
