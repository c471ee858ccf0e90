-- Generated from RunSpec (runtime/submission.py) by `python -m runtime.lua_includes`: do not edit.
-- The position of each field in the JSON array runs_create receives for one run.
local S = {
  id = 1,
  job = 2,
  queue = 3,
  input_json = 4,
  priority = 5,
  delay_ms = 6,
  run_at_ms = 7,
  labels_json = 8,
  tags_json = 9,
  metadata_json = 10,
  concurrency_key = 11,
  idempotency_key = 12,
  idempotency_ttl_ms = 13,
  max_attempts = 14,
  timeout_ms = 15,
  backoff_json = 16,
  version = 17,
  source = 18,
  entry_id = 19,
  extra_json = 20,
  ttl_ms = 21,
  rate_key = 22,
  debounce_key = 23,
  debounce_spec = 24,
  trace_context = 25,
  depends_json = 26,
}
-- The array stops at its last non-empty field: the fields it leaves out read as empty
-- through this metatable (cheaper for Redis than decoding them, or filling them in).
local S_EMPTY = {__index = {}}
for i = 1, 26 do S_EMPTY.__index[i] = '' end
