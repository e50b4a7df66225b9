-- defer: put a fetched job back to wait ARGV[3] ms, without spending an attempt: a shared limit
-- or a throttling service said "not yet". Failures ('x', which max_attempts bounds) stay as they are,
-- and the job waits in the scheduled set (status 'scheduled'), holding no worker. With ARGV[6]
-- '1' the job never started (a limit refused it), so the fetch's count of attempts ('n') and its
-- start ('t') are taken back too; a handler that ran and was throttled keeps them.
-- KEYS[1] job hash  KEYS[2] the owner's in-flight list  KEYS[3] scheduled zset
-- ARGV[1] base  ARGV[2] lease  ARGV[3] delay ms  ARGV[4] job retention ms
-- ARGV[5] most finished jobs kept  ARGV[6] '1' if the job never started
-- Returns 'deferred', 'cancelled' (a cancelled job is finished, not deferred), or 'lost'.
local base, jk, lease, delay_ms = ARGV[1], KEYS[1], ARGV[2], tonumber(ARGV[3])
local keep = parse_keep(ARGV[4], ARGV[5])
if not delay_ms then error('bad defer arguments') end
if not holds_lease(jk, lease) then return 'lost' end
local now = now_ms()
local id = id_of(base, jk)
-- From the tail, where the oldest leases are (see ack_jobs).
redis.call('LREM', KEYS[2], '-1', id)
if is_cancelled(jk) then
  finish_cancelled(base, jk, id, now, keep)
  return 'cancelled'
end
local due = now + delay_ms
if ARGV[6] == '1' then
  -- No attempts is an absent count, as enqueue.lua writes it.
  if redis.call('HINCRBY', jk, 'n', -1) <= 0 then redis.call('HDEL', jk, 'n') end
  redis.call('HDEL', jk, 't')
end
redis.call('HSET', jk, 's', 'scheduled', 'r', due)
redis.call('HDEL', jk, 'L', 'o', 'e')
redis.call('ZADD', KEYS[3], due, id)
return 'deferred'
