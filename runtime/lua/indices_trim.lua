--[[ indices_trim: trim a partition's terminal-status indices by retention and
  cap, as each finish does for the index it adds to. Run periodically, so that
  a partition where no run finished lately still lets its runs go when their
  retention ends: they leave their project's index while their records still
  exist (records expire a margin later, see make_terminal in includes/common.lua).
  KEYS[1] partition leased set (ZSET) - pins the slot
  ARGV[1] partition key prefix
  ARGV[2] finished-run TTL ms   ARGV[3] dead-letter TTL ms   ARGV[4] index cap
  Returns: how many index entries left by age ]]
--@include keys
--@include statuses
--@include common
local pfx = ARGV[1]
local ttl_ms, dlq_ttl_ms, cap = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local now = now_ms()
local trimmed = 0
for status in pairs(TERMINAL) do
  trimmed = trimmed + trim_index(pfx, K.status(pfx, status), now, retention_ms(status, ttl_ms, dlq_ttl_ms), cap)
end
return trimmed
