-- limit_pause: pauses limit keys for every process until now + ARGV[2] ms (a later pause in
-- force is kept), and forgets pauses that have ended.
-- KEYS[1] limit pauses zset
-- ARGV[1] base  ARGV[2] pause ms  ARGV[3..] limit keys
-- Returns the ms the pause ends at, from Redis's clock.
local pause_ms = tonumber(ARGV[2])
if not pause_ms then error('bad limit_pause arguments') end
local now = now_ms()
local until_ms = now + pause_ms
for i = 3, #ARGV do
  local current = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[i]))
  if not current or current < until_ms then redis.call('ZADD', KEYS[1], until_ms, ARGV[i]) end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return until_ms
