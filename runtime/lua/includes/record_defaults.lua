-- Generated from RECORD_DEFAULTS (runtime/submission.py) by `python -m runtime.lua_includes`: do not edit.
-- runs_create leaves a field equal to its default out of the record; readers take it from here.
local RECORD_DEFAULT = {max_attempts = 3, timeout_ms = 300000}
