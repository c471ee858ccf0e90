--[[ token_create: create a waitpoint token for a run (ctx.create_token),
  fenced by the lease token. Idempotent: the id derives from the run and the
  step position, and a token that exists is answered as it is, so a replay
  after a crash gets the same token with its first expiry.
  KEYS[1] the run record (HASH)
  ARGV[1] partition key prefix
  ARGV[2] run id
  ARGV[3] lease token
  ARGV[4] token id
  ARGV[5] timeout ms
  ARGV[6] tags (JSON array of strings)
  ARGV[7] how long a token is kept after it expires (ms; the finished-run TTL)
  ARGV[8] the longest timeout (ms): index entries older than it plus the retention are trimmed
  Returns: {created_at, expires_at} | -1 lease token no longer matches ]]
--@include keys
--@include common
local pfx, id, tid = ARGV[1], ARGV[2], ARGV[4]
local leased, project = read_if_leased(KEYS[1], ARGV[3], 'project')
if not leased then return -1 end
local tk = K.token(pfx, tid)
local t = call('HMGET', tk, 'created_at', 'expires_at')
if t[1] then return {tonumber(t[1]), tonumber(t[2])} end
local now = now_ms()
local timeout, keep = tonumber(ARGV[5]), tonumber(ARGV[7])
call('HSET', tk, 'run_id', id, 'project', project or 'default', 'status', 'waiting', 'tags', ARGV[6],
  'created_at', now, 'expires_at', now + timeout)
call('PEXPIRE', tk, timeout + keep)
local idx = K.tokens(pfx)
call('ZREMRANGEBYSCORE', idx, '-inf', now - tonumber(ARGV[8]) - keep)
call('ZADD', idx, now, tid)
add_event(pfx, id, 'token', '{"id":' .. cjson.encode(tid) .. ',"status":"waiting"}', now)
return {now, now + timeout}
