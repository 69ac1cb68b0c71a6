-- Stores a new intent (version 1) in one step: record, deadline, list indexes, audit, event.
-- KEYS: 1 intent hash, 2 deadline zset, 3 list index zset, 4 audit stream,
--       5 the state's index zset, 6 the agent's index zset for that state,
--       7.. the bucket's index zsets of decided states, trimmed to retention here like the
--       list index (one hash tag for all).
-- ARGV: 1 intent json, 2 id, 3 version, 4 state, 5 deadline ms or '', 6 event json,
--       7 pub/sub channel, 8 audit record json, 9 a token naming this write,
--       10 the record's ttl in ms when it is already decided, or '',
--       11 the smallest id still within retention (older index entries are trimmed),
--       12 the oldest audit entry id (ms) still within retention, 13 the retention in ms.
-- Returns {1} when written, {0, existing json, its write token} when the id is taken: the
-- token tells a retry of this very write from another replica's write of the same id.
local existing = redis.call('HMGET', KEYS[1], 'j', 'w')
if existing[1] then
  return {0, existing[1], existing[2] or ''}
end
redis.call('HSET', KEYS[1], 'j', ARGV[1], 'v', ARGV[3], 's', ARGV[4], 'w', ARGV[9])
if ARGV[10] ~= '' then
  redis.call('PEXPIRE', KEYS[1], ARGV[10])
end
if ARGV[5] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[2])
end
redis.call('ZADD', KEYS[3], 0, ARGV[2])
trim(KEYS[3], ARGV[11])
redis.call('ZADD', KEYS[5], 0, ARGV[2])
redis.call('ZADD', KEYS[6], 0, ARGV[2])
for i = 7, #KEYS do
  trim(KEYS[i], ARGV[11])
end
if ARGV[10] ~= '' then
  trim_agent_decided(KEYS[6], ARGV[11], ARGV[13])
end
redis.call('XADD', KEYS[4], 'MINID', '~', ARGV[12], '*', 'r', ARGV[8])
redis.call('PUBLISH', ARGV[7], ARGV[6])
return {1}
