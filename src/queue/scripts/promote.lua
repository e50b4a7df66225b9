-- promote: move scheduled jobs and retries that are due onto their queues. Whichever process
-- runs it first moves a job; ZREM and the push happen in one step, so no job is pushed twice.
-- KEYS[1] scheduled zset  KEYS[2] retry zset  KEYS[3] dead zset
-- It also deletes the succeeded and cancelled jobs past their retention (prune_finished): every
-- process runs it about twice a second, whatever its role.
-- ARGV[1] base  ARGV[2] most jobs to move per set, and to prune  ARGV[3] dead retention ms
-- ARGV[4] job retention ms
-- Returns {jobs moved, ms until the next job is due or -1 when none is waiting}.
local base, batch, dead_ms, job_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if not (batch and dead_ms and job_ms) then error('bad promote arguments') end
local now = now_ms()
local moved = 0
local next_due = -1
for z = 1, 2 do
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[z], '-inf', now, 'LIMIT', 0, batch)) do
    redis.call('ZREM', KEYS[z], id)
    local jk = job_hash(base, id)
    local f = redis.call('HMGET', jk, 's', 'q')
    if (f[1] == 'scheduled' or f[1] == 'retrying') and f[2] then
      make_ready(base, jk, id, f[2], false, now)
      moved = moved + 1
    end
  end
  local first = redis.call('ZRANGE', KEYS[z], 0, 0, 'WITHSCORES')
  if first[2] then
    local wait = math.max(0, tonumber(first[2]) - now)
    if next_due < 0 or wait < next_due then next_due = wait end
  end
end
-- Dead jobs expire on their own; their entries in the dead set go here.
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - dead_ms)
-- A full batch pruned: more may be past their retention, so the caller comes back at once.
if prune_finished(base, now, job_ms, batch) >= batch then next_due = 0 end
return {moved, next_due}
