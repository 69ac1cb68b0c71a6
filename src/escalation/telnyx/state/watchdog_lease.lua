-- Hands out the watchdogs due by ARGV[1] and leases them until ARGV[2], so no other caller
-- gets them again unless the lease passes without a disarm (the firer died).
-- KEYS: 1 the bucket's watchdog index (member -> due ms). ARGV: 1 now ms, 2 lease end ms,
-- 3 limit. Returns the members handed out.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], member)
end
return due
