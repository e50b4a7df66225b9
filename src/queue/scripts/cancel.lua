-- cancel: a queued or scheduled job never runs; a running one is marked so that its owner
-- cancels it (told at once through pub/sub, and at its next heartbeat in any case).
-- KEYS[1] job hash  KEYS[2] scheduled zset  KEYS[3] retry zset
-- ARGV[1] base  ARGV[2] job retention ms
-- Returns {'missing', {}}, {'finished', job} (succeeded or dead: too late), or {'ok', job}.
local base, jk = ARGV[1], KEYS[1]
local status = redis.call('HGET', jk, 'status')
if not status then return {'missing', {}} end
if status == 'succeeded' or status == 'dead' then return {'finished', redis.call('HGETALL', jk)} end
if status == 'cancelled' then return {'ok', redis.call('HGETALL', jk)} end
local id = redis.call('HGET', jk, 'id')
if status == 'running' then
  redis.call('HSET', jk, 'status', 'cancelled', 'cancel', '1')
  redis.call('PUBLISH', base .. 'cancel', id)
  return {'ok', redis.call('HGETALL', jk)}
end
if status == 'queued' then
  redis.call('LREM', base .. 'queue:' .. redis.call('HGET', jk, 'queue'), 0, id)
else
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
end
redis.call('HSET', jk, 'cancel', '1')
finish_cancelled(base, jk, now_ms(), ARGV[2])
return {'ok', redis.call('HGETALL', jk)}
