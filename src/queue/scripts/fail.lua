-- fail: record a failed attempt, then schedule a retry or move the job to the dead set.
-- KEYS[1] job hash  KEYS[2] the owner's in-flight list  KEYS[3] retry zset  KEYS[4] dead zset
-- ARGV[1] base  ARGV[2] lease  ARGV[3] error message  ARGV[4] 'retry' or 'dead' (do not retry)
-- ARGV[5] retry delay ms  ARGV[6] job retention ms  ARGV[7] dead retention ms  ARGV[8] dead max
-- ARGV[9] how many error entries a job keeps
-- Returns 'retrying', 'dead', 'cancelled', or 'lost' when the lease is no longer the caller's.
local base, jk = ARGV[1], KEYS[1]
if redis.call('HGET', jk, 'lease') ~= ARGV[2] then return 'lost' end
local now = now_ms()
local id = redis.call('HGET', jk, 'id')
redis.call('LREM', KEYS[2], 1, id)
local failures = redis.call('HINCRBY', jk, 'failures', 1)
local errors = cjson.decode(redis.call('HGET', jk, 'errors') or '[]')
errors[#errors + 1] = {attempt = tonumber(redis.call('HGET', jk, 'attempts')), at = now, message = ARGV[3]}
while #errors > tonumber(ARGV[9]) do table.remove(errors, 1) end
redis.call('HSET', jk, 'errors', cjson.encode(errors))
redis.call('HDEL', jk, 'lease', 'owner')
if redis.call('HGET', jk, 'cancel') == '1' then
  finish_cancelled(base, jk, now, ARGV[6])
  return 'cancelled'
end
if ARGV[4] == 'dead' or failures >= tonumber(redis.call('HGET', jk, 'max_attempts')) then
  redis.call('HSET', jk, 'status', 'dead', 'finished_at', now)
  redis.call('ZADD', KEYS[4], now, id)
  expire_finished(base, jk, ARGV[7])
  -- Keep the dead set within its age and size limits. Records past their age expire by their
  -- own TTL; those over the count are deleted now, so memory stays bounded.
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - tonumber(ARGV[7]))
  local excess = redis.call('ZCARD', KEYS[4]) - tonumber(ARGV[8])
  if excess > 0 then
    local popped = redis.call('ZPOPMIN', KEYS[4], excess)
    for i = 1, #popped, 2 do redis.call('DEL', job_key(base, popped[i])) end
  end
  return 'dead'
end
local due = now + tonumber(ARGV[5])
redis.call('HSET', jk, 'status', 'retrying', 'run_at', due)
redis.call('ZADD', KEYS[3], due, id)
return 'retrying'
