-- Claims an idempotency key for an intent, or tells who holds it.
-- KEYS: 1 the (agent, key) record. ARGV: 1 "<intent id>\n<body hash>", 2 ttl seconds.
-- Returns the holder's value, or false when this call claimed the key.
local holder = redis.call('GET', KEYS[1])
if holder then
  return holder
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return false
