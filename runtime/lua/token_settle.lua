--[[ token_settle: complete a waitpoint token with data, or expire it, once
  (the callback URL, POST /v1/tokens/{id}/complete or /expire). The run
  waiting for it in ctx.wait_for_token resumes with the data (completed) or
  raises WaitTimeout (expired); a token completed before its run waits keeps
  the data for that wait.
  KEYS[1] the token (HASH)
  ARGV[1] partition key prefix
  ARGV[2] token id
  ARGV[3] outcome: completed | expired
  ARGV[4] data (JSON; 'null' for expired)
  ARGV[5] wake channel
  ARGV[6] who settled it: api | callback
  Returns: {1 run resumed | 0 not waiting yet, run id} |
    -2 no such token | -5 already completed | -7 already expired ]]
--@include keys
--@include common
--@include messages
local pfx, tid, outcome, data = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local t = call('HMGET', KEYS[1], 'status', 'expires_at', 'run_id')
if not t[1] then return -2 end
if t[1] == 'completed' then return -5 end
local now = now_ms()
if t[1] == 'expired' or tonumber(t[2]) <= now then return -7 end
call('HSET', KEYS[1], 'status', outcome, 'output', data, 'settled_at', now, 'settled_by', ARGV[6])
local id = t[3]
local woke = message_deliver(pfx, id, 'token', tid, data, outcome == 'completed' and 'completed' or 'timed_out', now)
if call('EXISTS', K.run(pfx, id)) == 1 then
  add_event(pfx, id, 'token', '{"id":' .. cjson.encode(tid) .. ',"status":' .. cjson.encode(outcome) .. '}', now)
end
if woke then WAKE = true end
announce_work(ARGV[5], now, pfx)
return {woke and 1 or 0, id}
