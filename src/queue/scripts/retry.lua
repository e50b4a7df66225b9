-- retry: run a dead or cancelled job again, with a fresh budget of failed attempts. Its errors
-- and checkpoint are kept, so the history stays readable and a long job resumes.
-- KEYS[1] job hash  KEYS[2] dead zset
-- ARGV[1] base
-- Returns {'missing', {}}, {'conflict', job} (not dead or cancelled, or still winding down), or {'ok', job}.
-- A cancelled job leaves the 'finished' list (a scan of at most JOB_RETENTION_MAX ids, on a
-- manual retry only), so the count bound never deletes it for a finish before this retry.
local base, jk = ARGV[1], KEYS[1]
local id = id_of(base, jk)
upgrade(jk)
local f = redis.call('HMGET', jk, 's', 'q')
local status, q = f[1], f[2]
if not status then return {'missing', {}} end
if (status ~= 'dead' and status ~= 'cancelled') or redis.call('HEXISTS', jk, 'L') == 1 then
  return {'conflict', record(jk, id)}
end
if not q then error('job record without a queue') end
redis.call('ZREM', KEYS[2], id)
if status == 'cancelled' then
  redis.call('LREM', finished_key(base), 0, id)
  redis.call('ZREM', done_key(base, 'cancelled'), id)
end
ready_again(base, jk, id, q, now_ms())
return {'ok', record(jk, id)}
