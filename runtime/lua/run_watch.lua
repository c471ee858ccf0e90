--[[ run_watch: mark a run watched, so the status changes readers otherwise
  derive from its record (a lease taken, an attempt ended, a terminal status)
  are also written to its timeline stream from now on: a live reader blocking
  on the stream then wakes for them. The mark lasts as long as the record.
  KEYS[1] the run record (HASH)
  ARGV[1] partition key prefix (unused; every script gets it)
  Returns: 1 watched | -2 no such run ]]
--@include keys
--@include common
if call('EXISTS', KEYS[1]) == 0 then return -2 end
call('HSET', KEYS[1], 'tl', '1')
return 1
