-- ack: record a job's success and release it, if the caller still holds its lease.
-- KEYS[1] job hash  KEYS[2] the owner's in-flight list
-- ARGV[1] base  ARGV[2] lease  ARGV[3] result (JSON)  ARGV[4] job retention ms
-- Returns 1, or 0 when the lease is no longer the caller's (nothing is written).
if redis.call('HGET', KEYS[1], 'lease') ~= ARGV[2] then return 0 end
local now = now_ms()
redis.call('LREM', KEYS[2], 1, redis.call('HGET', KEYS[1], 'id'))
redis.call('HSET', KEYS[1], 'result', ARGV[3], 'finished_at', now)
redis.call('HDEL', KEYS[1], 'lease', 'owner', 'checkpoint')
-- A job cancelled while it ran stays cancelled, whatever it returned.
if redis.call('HGET', KEYS[1], 'cancel') ~= '1' then
  redis.call('HSET', KEYS[1], 'status', 'succeeded')
end
expire_finished(ARGV[1], KEYS[1], ARGV[4])
return 1
