-- Publishes a progress line for an intent still at the version the event carries, and audits it.
-- KEYS: 1 intent hash, 2 audit stream (one hash tag).
-- ARGV: 1 expected version, 2 event json, 3 pub/sub channel, 4 audit record json.
-- Returns 1 when published, 0 when the intent moved on (re-read and retry), -1 when missing.
local v = redis.call('HGET', KEYS[1], 'v')
if not v then
  return -1
end
if v ~= ARGV[1] then
  return 0
end
redis.call('XADD', KEYS[2], '*', 'r', ARGV[4])
redis.call('PUBLISH', ARGV[3], ARGV[2])
return 1
