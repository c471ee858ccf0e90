--[[ messages: delivering events, signals and waitpoint tokens to durable waits
  (runtime/signals.py, runtime/tokens.py). Each is a wait of one run for one
  key (an event key, a signal name, a token id), recorded on the run as
  wait_kind and wait_key; what arrives before the wait is kept (an event for
  event_ttl_s, a signal in the run's buffer, a token's outcome on the token)
  and taken when the wait begins. Included after common by the scripts that
  settle waits (runs_finish, leases_reap) and by the message scripts. ]]

-- The oldest buffered signal `name` of run `id`: removed from the buffer and
-- its data (JSON text) returned, or nil. The buffer is capped (signal_send),
-- so the scan is bounded.
local function signal_take(pfx, id, name)
  local sk = K.signals(pfx, id)
  local head = name .. '\n'
  for _, entry in ipairs(call('LRANGE', sk, 0, -1)) do
    if string.sub(entry, 1, #head) == head then
      call('LREM', sk, 1, entry)
      return string.sub(entry, #head + 1)
    end
  end
  return nil
end

-- A token's outcome as its wait records it: ('completed', data) or
-- ('timed_out', 'null') once completed or expired (a token gone by retention
-- counts as expired); nil while it is open.
local function token_outcome(pfx, tid, now)
  local t = call('HMGET', K.token(pfx, tid), 'status', 'output', 'expires_at')
  if t[1] == 'completed' then return 'completed', t[2] end
  if not t[1] or t[1] == 'expired' or tonumber(t[3] or 0) <= now then return 'timed_out', 'null' end
  return nil, nil
end

-- Run `id` receives the kept event of `key` (event_send, or a wait beginning):
-- true when it had not received it yet. Each run receives an event once, so a
-- run that waits for the key again waits for the next event. The takers set is
-- made with the event and expires with it (event_send); an event kept by a node
-- of an earlier version has none, and every wait takes it, as then.
local function event_taken_by(pfx, id, key)
  local takers = K.event_takers(pfx, key)
  return call('EXISTS', takers) == 0 or call('SADD', takers, id) == 1
end

-- What a wait of `kind` (event | signal | token) for `key` finds when it begins:
-- the wait step's status and data (taken from the buffer for a signal; an event
-- stays kept for other runs' waits), or nil.
local function message_arrived(pfx, id, kind, key, now)
  if kind == 'event' then
    local data = call('GET', K.event(pfx, key))
    if data and event_taken_by(pfx, id, key) then return 'completed', data end
    return nil, nil
  end
  if kind == 'signal' then
    local data = signal_take(pfx, id, key)
    if data then return 'completed', data end
    return nil, nil
  end
  return token_outcome(pfx, key, now)
end

-- Settle's hook for a run whose attempt ends in an event, signal or token wait (its
-- status, wait fields and wait_key already written): what arrived before the
-- wait is delivered at once and the run queued again (true); false when the
-- run must wait.
local function message_wait_begins(pfx, id, w, now)
  local status, data = message_arrived(pfx, id, w.kind, w.key, now)
  if not data then return false end
  complete_wait_step(pfx, id, w.step, w.index, now, data, status, now)
  resume(pfx, id, now, w.kind)
  return true
end

-- Deliver to run `id` if it waits now for this kind and key: its wait step is
-- recorded (`status`, `data`) and the run queued again. Returns true when delivered.
local function message_deliver(pfx, id, kind, key, data, status, now)
  local r = call('HMGET', K.run(pfx, id), 'status', 'wait_kind', 'wait_key', 'wait_step', 'wait_index',
    'wait_started_at')
  if r[1] ~= 'waiting' or r[2] ~= kind or r[3] ~= key then return false end
  complete_wait_step(pfx, id, r[4], r[5], r[6], data, status, now)
  resume(pfx, id, now, kind)
  return true
end
