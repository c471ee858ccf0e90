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
    for _, gid in ipairs(gone) do call('DEL', pfx .. 'run:' .. gid) end
  end
end

-- Move a run to a terminal status: record time, index, expire the record.
local function make_terminal(pfx, id, status, now, ttl_ms, cap)
  local rk = pfx .. 'run:' .. id
  call('HSET', rk, 'status', status, 'finished_at', now, 'updated_at', now)
  call('HDEL', rk, 'lease_token', 'lease_node', 'lease_expires_at', 'next_retry_at')
  local index = pfx .. 'st:' .. status
  call('ZADD', index, now, id)
  call('PEXPIRE', rk, ttl_ms)
  trim_index(pfx, index, now, ttl_ms, cap)
end

-- Put a run (back) into its queue's ready set.
local function make_ready(pfx, id, queue, priority, now)
  local rk = pfx .. 'run:' .. id
  call('HSET', rk, 'status', 'queued', 'updated_at', now, 'ready_at', now)
  call('ZADD', pfx .. 'ready:' .. queue, ready_score(priority, next_seq(pfx)), id)
  call('SADD', pfx .. 'queues', queue)
end

-- Drop a run's lease and its places in the concurrency sets.
local function release_lease(pfx, id, job, ckey)
  call('ZREM', pfx .. 'leased', id)
  call('SREM', pfx .. 'cc:j:' .. job, id)
  if ckey and ckey ~= '' then call('SREM', pfx .. 'cc:k:' .. job .. '|' .. ckey, id) end
end
