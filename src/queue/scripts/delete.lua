-- delete: remove a dead job for good (its record, its place in the dead set, and its
-- Idempotency-Key, so the same request may create the job again).
-- KEYS[1] job hash  KEYS[2] dead zset
-- ARGV[1] base
-- Returns 'deleted', 'missing', or the job's status when it is not dead (nothing is written).
local base, jk = ARGV[1], KEYS[1]
local f = redis.call('HMGET', jk, 'status', 'id', 'idem_key')
local status, id, idem = f[1], f[2], f[3]
if not status then return 'missing' end
if status ~= 'dead' or redis.call('HEXISTS', jk, 'lease') == 1 then return status end
if not id then error('job record without id') end
redis.call('ZREM', KEYS[2], id)
if idem and redis.call('GET', idem_key(base, idem)) == id then
  redis.call('DEL', idem_key(base, idem))
end
redis.call('DEL', jk)
return 'deleted'
