-- requeue: give a job back without counting a failure (shutdown, or the end of a cancelled run).
-- KEYS[1] job hash  KEYS[2] the owner's in-flight list
-- ARGV[1] base  ARGV[2] lease  ARGV[3] job retention ms  ARGV[4] most finished jobs kept
-- Returns 'queued', 'cancelled' (a cancelled job is finished, not queued), or 'lost'.
local base, jk, lease = ARGV[1], KEYS[1], ARGV[2]
local keep = parse_keep(ARGV[3], ARGV[4])
if not holds_lease(jk, lease) then return 'lost' end
local now = now_ms()
local id, q = id_of(base, jk), redis.call('HGET', jk, 'q')
local cancelled = is_cancelled(jk)
if not q then error('job ' .. tostring(id) .. ' has no queue') end
-- From the tail, where the oldest leases are (see ack_jobs).
redis.call('LREM', KEYS[2], '-1', id)
if cancelled then
  finish_cancelled(base, jk, id, now, keep)
  return 'cancelled'
end
make_ready(base, jk, id, q, true, now)
return 'queued'
