-- Generated from runtime/statuses.py by `python -m runtime.lua_includes`: do not edit.
-- A finished run's keys expire RETENTION_MARGIN_MS after its retention, so the trim that
-- ends the retention still finds its record (and its project).
local RETENTION_MARGIN_MS = 600000
