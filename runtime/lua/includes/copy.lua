--[[ copy: start a new queued run with the input and options of another one
  (replay, restart). The new run belongs to the same project and links back
  to its source through `link` (replay_of, restart_of). A copy of a run made
  with depends_on does not wait again: it keeps the parent outputs it had. ]]
local COPIED = {'job', 'queue', 'priority', 'max_attempts', 'timeout_ms', 'backoff',
  'labels', 'tags', 'metadata', 'concurrency_key', 'version', 'project', 'overrides'}

local function copy_run(pfx, src_key, new_id, now, source, link)
  local nk = K.run(pfx, new_id)
  local vals = call('HMGET', src_key, unpack(COPIED))
  for i, k in ipairs(COPIED) do if vals[i] then call('HSET', nk, k, vals[i]) end end
  local src_id = string.sub(src_key, #K.run(pfx, '') + 1)  -- the key names the run (records hold no id)
  call('SET', K.input(pfx, new_id), call('GET', K.input(pfx, src_id)) or 'null')
  local created = int_text(now)
  local fields = {'created_at', created, 'attempt', 0, 'charged', 0, 'source', source, link, src_id}
  project_listed(pfx, vals[12] or 'default', new_id, created,
    function(k, v) fields[#fields + 1] = k; fields[#fields + 1] = v end)
  call('HSET', nk, unpack(fields))
  -- a dependent's copy runs at once (its parents finished) and reads the same parent outputs
  if call('COPY', K.parent_outputs(pfx, src_id), K.parent_outputs(pfx, new_id)) == 1 then
    mark_satellite(pfx, new_id, 'pout')
  end
  make_ready(pfx, new_id, vals[2], vals[3] or '0', now)
  add_event(pfx, new_id, 'status', '{"status":"queued","reason":' .. cjson.encode(source) .. '}', now)
end
