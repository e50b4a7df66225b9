-- retry: run a dead or cancelled job again, with a fresh budget of failed attempts. Its errors
-- and checkpoint are kept, so the history stays readable and a long job resumes.
-- KEYS[1] job hash  KEYS[2] dead zset
-- ARGV[1] base
-- Returns {'missing', {}}, {'conflict', job} (not dead or cancelled, or still winding down), or {'ok', job}.
local base, jk = ARGV[1], KEYS[1]
local status = redis.call('HGET', jk, 'status')
if not status then return {'missing', {}} end
if (status ~= 'dead' and status ~= 'cancelled') or redis.call('HEXISTS', jk, 'lease') == 1 then
  return {'conflict', redis.call('HGETALL', jk)}
end
local id = redis.call('HGET', jk, 'id')
redis.call('ZREM', KEYS[2], id)
redis.call('PERSIST', jk)
redis.call('HSET', jk, 'failures', 0)
redis.call('HDEL', jk, 'cancel', 'finished_at', 'result')
make_ready(base, jk, id, false, now_ms())
return {'ok', redis.call('HGETALL', jk)}
