--[[ run_idem_reset: forget the idempotency key of a run, so that the next
  submission with the same job and key creates a new run. The key is deleted
  only while it still maps to this run; the run keeps its idempotency_key
  field and records idempotency_reset_at.
  KEYS[1] the run record (HASH)
  ARGV[1] partition key prefix
  ARGV[2] run id
  Returns: 1 reset | 0 no key maps to this run (none given, expired or reused) |
    -2 no such run ]]
--@include keys
--@include common
local pfx, id = ARGV[1], ARGV[2]
local r = call('HMGET', KEYS[1], 'job', 'idempotency_key')
if not r[1] then return -2 end
if not r[2] or r[2] == '' then return 0 end
local ik = K.idempotency(pfx, r[1], r[2])
if call('GET', ik) ~= id then return 0 end
local now = now_ms()
call('DEL', ik)
call('HSET', KEYS[1], 'idempotency_reset_at', now)
add_event(pfx, id, 'idempotency_reset', '{}', now)
return 1
