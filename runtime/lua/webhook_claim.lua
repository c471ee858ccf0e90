--[[ webhook_claim: take due webhook deliveries, so that one node at a time attempts each.
  A taken delivery's score moves to the end of its attempt's timeout: when the node dies mid-attempt,
  the delivery is due again then and another node takes it (at-least-once delivery). The node that
  took it moves it on (next retry) or removes it (delivered, dead-lettered) when the attempt ends.
  Node-wide (deployment hash tag): deliveries are few, and not tied to one partition.
  KEYS[1] due deliveries (ZSET, score = when due)
  ARGV[1] most deliveries to take
  ARGV[2] attempt timeout in ms (how long a taken delivery stays hidden)
  Returns: the ids of the deliveries taken ]]
local call = redis.call
local t = call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ids = call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, id in ipairs(ids) do
  call('ZADD', KEYS[1], now + tonumber(ARGV[2]), id)
end
return ids
