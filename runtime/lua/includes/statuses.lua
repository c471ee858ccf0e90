-- Generated from runtime/statuses.py by `python -m runtime.lua_includes`: do not edit.
-- A run in a LIVE status may still run; a TERMINAL one is finished for good.
local LIVE = {delayed = true, queued = true, executing = true, waiting = true, paused = true}
local TERMINAL = {completed = true, failed = true, canceled = true, expired = true, dead_letter = true}
