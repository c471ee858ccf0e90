--[[ limits_apply: write a job's limits in one partition (the code's, or a
  runtime override, or clear the override) and bring the lease sets of its
  executing runs in line with them at once. Lease sets exist only for what a
  limit counts (a job set for max_concurrency, key sets for
  max_concurrency_per_key); each leased run notes on its record (cc) which
  sets hold it, so a release removes it from exactly those even when the
  limits changed in between.
  KEYS[1] partition leased set (ZSET) - pins the slot
  ARGV[1] partition key prefix
  ARGV[2] job
  ARGV[3] which hash: 'code' (jobs) | 'override' (jobs:override)
  ARGV[4] limit spec "max,per_key,rate_n,rate_ms,key_rate_n,key_rate_ms", or '' to delete it
  Returns: number of executing runs of the job whose lease sets changed (0 also
    when the spec was already stored) ]]
--@include keys
--@include common
--@include claim_reply
--@include affinity
--@include flow
--@include claim
local pfx, job, which, spec = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local hash = which == 'override' and K.jobs_override(pfx) or K.jobs(pfx)
if (call('HGET', hash, job) or '') == spec then return 0 end  -- unchanged (a node restarting)
if spec == '' then call('HDEL', hash, job) else call('HSET', hash, job, spec) end
local lim = job_limits(pfx, job)
local changed = 0
for _, id in ipairs(call('ZRANGEBYSCORE', KEYS[1], LEASED_FROM, LEASED_TO)) do  -- (not the anchor)
  local r = call('HMGET', K.run(pfx, id), 'job', 'concurrency_key', 'cc')
  if r[1] == job then
    local want = lease_sets_of(lim, r[2])
    if want ~= (r[3] or '') then
      release_lease_sets(pfx, id, job, r[2], r[3])
      hold_lease_sets(pfx, id, job, r[2], want)
      call('HSET', K.run(pfx, id), 'cc', want)
      changed = changed + 1
    end
  end
end
return changed
