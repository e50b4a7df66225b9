-- cancel: a queued or scheduled job never runs; a running one is marked so that its owner
-- cancels it (told at once through pub/sub, and at its next heartbeat in any case).
-- KEYS[1] job hash  KEYS[2] scheduled zset  KEYS[3] retry zset
-- ARGV[1] base  ARGV[2] job retention ms  ARGV[3] most finished jobs kept
-- Returns {'missing', {}}, {'finished', job} (succeeded or dead: too late), or {'ok', job}.
--
-- A queued job's id stays in its queue list: removing it would cost a scan of the whole list
-- (LREM), while fetch already skips every id whose job is no longer queued. Until a worker
-- passes it, the id still counts in the queue's depth.
local base, jk = ARGV[1], KEYS[1]
local keep = parse_keep(ARGV[2], ARGV[3])
local id = id_of(base, jk)
upgrade(jk)
local status = redis.call('HGET', jk, 's')
if not status then return {'missing', {}} end
if status == 'succeeded' or status == 'dead' then return {'finished', record(jk, id)} end
if status == 'cancelled' then return {'ok', record(jk, id)} end
if status == 'running' then
  redis.call('HSET', jk, 's', 'cancelled', 'cancel', '1')
  -- Listed as cancelled at once, while its owner winds it down: no longer running, it would be
  -- in no list until then. The outcome the owner writes indexes it again (index_finished).
  local dk = done_key(base, 'cancelled')
  redis.call('ZADD', dk, now_ms(), id)
  redis.call('PEXPIRE', dk, keep[1])
  redis.call('PUBLISH', cancel_channel(base), id)
  return {'ok', record(jk, id)}
end
if status ~= 'queued' then
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
end
redis.call('HSET', jk, 'cancel', '1')
-- Marks the id left in the queue list, so a retry before a fetch passes it reuses it.
if status == 'queued' then redis.call('HSET', jk, 'w', '1') end
finish_cancelled(base, jk, id, now_ms(), keep)
return {'ok', record(jk, id)}
