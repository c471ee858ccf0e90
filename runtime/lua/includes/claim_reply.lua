-- Generated from CLAIM_FIELDS (runtime/script_replies.py) by `python -m runtime.lua_includes`: do not edit.
-- A claimed run is CLAIMED_SIZE consecutive values of a claim reply or hand-off push.
local CLAIMED = {
  run_id = 1,
  token = 2,
  attempt = 3,
  job = 4,
  input = 5,
  timeout_ms = 6,
  ready_at_ms = 7,
  metadata = 8,
  tags = 9,
  step_count = 10,
}
local CLAIMED_SIZE = 10
