--[[ runs_claim: lease up to N runnable runs of this partition for one node.
  Queues are visited round-robin from a rotating offset; within a queue runs
  come in priority then ready-time order. A run is skipped (and stays queued)
  when its job is not served by this node or when a concurrency limit of its
  job (per job, or per concurrency key) is full. Limits come from the
  partition's job table; the leased sets are exact (sets of ids).
  KEYS[1] partition queue set (SET) - pins the slot
  ARGV[1] partition key prefix
  ARGV[2] node id
  ARGV[3] lease TTL in ms
  ARGV[4] max runs to lease
  ARGV[5] max candidates to inspect per queue
  ARGV[6] comma-separated queues served by this node
  ARGV[7] comma-separated jobs served by this node
  ARGV[8] rotation offset (integer)
  Returns: {now_ms, then 10 fields per leased run: id, token, attempt, job,
    input, timeout_ms, ready_at, metadata (JSON or nil), tags (JSON or nil),
    number of recorded steps} ]]
--@include common
local pfx, node, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local want, scan = tonumber(ARGV[4]), tonumber(ARGV[5])
local now = now_ms()
local out = {now}
local served = {}
for j in string.gmatch(ARGV[7], '[^,]+') do served[j] = true end
local queues = {}
for q in string.gmatch(ARGV[6], '[^,]+') do queues[#queues + 1] = q end
local limits = {}
local function limit_of(job)
  local l = limits[job]
  if l == nil then
    l = {0, 0}
    local spec = call('HGET', pfx .. 'jobs', job)
    if spec then
      local a, b = string.match(spec, '^(%d*),(%d*)')
      l = {tonumber(a) or 0, tonumber(b) or 0}
    end
    limits[job] = l
  end
  return l
end
local got = 0
local nq = #queues
local offset = tonumber(ARGV[8]) % math.max(nq, 1)
for qi = 0, nq - 1 do
  if got >= want then break end
  local queue = queues[((qi + offset) % nq) + 1]
  local rkey = pfx .. 'ready:' .. queue
  local ids = call('ZRANGE', rkey, 0, scan - 1)
  for _, id in ipairs(ids) do
    if got >= want then break end
    local rk = pfx .. 'run:' .. id
    local r = call('HMGET', rk, 'job', 'concurrency_key', 'input', 'timeout_ms', 'ready_at', 'attempt', 'charged',
      'metadata', 'tags')
    local job, ckey = r[1], r[2]
    if not job then
      call('ZREM', rkey, id) -- record expired or deleted: drop the dangling entry
    elseif served[job] then
      local lim = limit_of(job)
      local ok = true
      if lim[1] > 0 and call('SCARD', pfx .. 'cc:j:' .. job) >= lim[1] then ok = false end
      if ok and ckey and lim[2] > 0 and call('SCARD', pfx .. 'cc:k:' .. job .. '|' .. ckey) >= lim[2] then ok = false end
      if ok then
        local attempt = tonumber(r[6] or '0') + 1
        local token = node .. '/' .. attempt
        local expires = now + ttl
        call('ZREM', rkey, id)
        call('ZADD', pfx .. 'leased', expires, id)
        call('SADD', pfx .. 'cc:j:' .. job, id)
        if ckey then call('SADD', pfx .. 'cc:k:' .. job .. '|' .. ckey, id) end
        call('HSET', rk, 'status', 'executing', 'attempt', attempt,
          'charged', tonumber(r[7] or '0') + 1, 'lease_token', token, 'lease_node', node,
          'lease_expires_at', expires, 'attempt_started_at', now, 'heartbeat_at', now,
          'updated_at', now)
        call('HSETNX', rk, 'started_at', now)
        out[#out + 1] = id
        out[#out + 1] = token
        out[#out + 1] = attempt
        out[#out + 1] = job
        out[#out + 1] = r[3]
        out[#out + 1] = r[4]
        out[#out + 1] = r[5] or now
        out[#out + 1] = r[8]
        out[#out + 1] = r[9]
        out[#out + 1] = call('HLEN', pfx .. 'steps:' .. id)
        add_event(pfx, id, 'status', '{"status":"executing","attempt":' .. attempt .. ',"node":'
          .. cjson.encode(node) .. '}', now)
        got = got + 1
      end
    end
  end
end
return out
