-- requeue: give a job back without counting a failure (shutdown, or the end of a cancelled run).
-- KEYS[1] job hash  KEYS[2] the owner's in-flight list
-- ARGV[1] base  ARGV[2] lease  ARGV[3] job retention ms
-- Returns 'queued', 'cancelled' (a cancelled job is finished, not queued), or 'lost'.
local base, jk = ARGV[1], KEYS[1]
if redis.call('HGET', jk, 'lease') ~= ARGV[2] then return 'lost' end
local now = now_ms()
local id = redis.call('HGET', jk, 'id')
redis.call('LREM', KEYS[2], 1, id)
if redis.call('HGET', jk, 'cancel') == '1' then
  finish_cancelled(base, jk, now, ARGV[3])
  return 'cancelled'
end
make_ready(base, jk, id, true, now)
return 'queued'
