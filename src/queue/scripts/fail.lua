-- fail: record a failed attempt, then schedule a retry or move the job to the dead set.
-- KEYS[1] job hash  KEYS[2] the owner's in-flight list  KEYS[3] retry zset  KEYS[4] dead zset
-- ARGV[1] base  ARGV[2] lease  ARGV[3] error message (already cut to its limit)
-- ARGV[4] 'retry' or 'dead' (do not retry)  ARGV[5] retry delay ms  ARGV[6] job retention ms
-- ARGV[7] most finished jobs kept  ARGV[8] dead retention ms  ARGV[9] dead max
-- ARGV[10] how many error entries a job keeps
-- Returns 'retrying', 'dead', 'cancelled', or 'lost' when the lease is no longer the caller's.
--
-- Each failure is one hash field, 'err:<n>' (n counts up in 'err_seq'), holding one JSON entry;
-- the entry ARGV[10] places back is deleted. So a failure costs the same however many came
-- before it: the history is never decoded and encoded again.
local base, jk, lease, message, mode = ARGV[1], KEYS[1], ARGV[2], ARGV[3], ARGV[4]
local delay_ms, dead_ms, dead_max, kept = tonumber(ARGV[5]), tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local keep = parse_keep(ARGV[6], ARGV[7])
if not (delay_ms and dead_ms and dead_max and kept) then error('bad fail arguments') end
if not holds_lease(jk, lease) then return 'lost' end
local now = now_ms()
local f = redis.call('HMGET', jk, 'n', 'x', 'm', 'err_seq')
local cancelled = is_cancelled(jk)
local id = id_of(base, jk)
local failures = (tonumber(f[2]) or 0) + 1
local max_attempts = tonumber(f[3]) or 1
local seq = (tonumber(f[4]) or 0) + 1
local entry = cjson.encode({attempt = tonumber(f[1]) or 0, at = now, message = message})
-- From the tail, where the oldest leases are (see ack_jobs).
redis.call('LREM', KEYS[2], '-1', id)
redis.call('HSET', jk, 'x', failures, 'err_seq', seq, err_field(seq), entry)
if seq > kept then redis.call('HDEL', jk, err_field(seq - kept)) end
redis.call('HDEL', jk, 'L', 'o', 'e')
count_minute(base, now, not cancelled)
if cancelled then
  finish_cancelled(base, jk, id, now, keep)
  return 'cancelled'
end
if mode == 'dead' or failures >= max_attempts then
  redis.call('HSET', jk, 's', 'dead', 'f', now)
  redis.call('ZADD', KEYS[4], now, id)
  expire_dead(base, jk, dead_ms)
  -- Keep the dead set within its age and size limits. Records past their age expire by their
  -- own TTL; those over the count are deleted now, so memory stays bounded.
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - dead_ms)
  local excess = redis.call('ZCARD', KEYS[4]) - dead_max
  if excess > 0 then
    local popped = redis.call('ZPOPMIN', KEYS[4], excess)
    for i = 1, #popped, 2 do redis.call('DEL', job_key(base, popped[i])) end
  end
  return 'dead'
end
local due = now + delay_ms
redis.call('HSET', jk, 's', 'retrying', 'r', due)
redis.call('ZADD', KEYS[3], due, id)
return 'retrying'
