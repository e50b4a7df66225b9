-- delete: remove a dead job for good (its record, its place in the dead set, and its
-- Idempotency-Key, so the same request may create the job again).
-- KEYS[1] job hash  KEYS[2] dead zset
-- ARGV[1] base
-- Returns 'deleted', 'missing', or the job's status when it is not dead (nothing is written).
local base, jk = ARGV[1], KEYS[1]
local id = id_of(base, jk)
upgrade(jk)
local f = redis.call('HMGET', jk, 's', 'idem_key', 'q')
local status, idem = f[1], f[2]
if not status then return 'missing' end
if status ~= 'dead' or redis.call('HEXISTS', jk, 'L') == 1 then return status end
redis.call('ZREM', KEYS[2], id)
if idem and f[3] and redis.call('GET', idem_key(base, f[3], idem)) == id then
  redis.call('DEL', idem_key(base, f[3], idem))
end
redis.call('DEL', jk)
return 'deleted'
