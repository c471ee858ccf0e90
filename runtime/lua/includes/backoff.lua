-- Generated from DEFAULT_BACKOFF (runtime/submission.py) by `python -m runtime.lua_includes`: do not edit.
-- A run created with the default backoff stores none (a record field less); this is it.
local DEFAULT_BACKOFF = 'exponential,1000,300000,0.2'
