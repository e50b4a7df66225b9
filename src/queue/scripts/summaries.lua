-- summaries: the newest entries of a sorted set of jobs (the dead set), as short summaries for
-- a list: fixed fields and the last error entry, never args, results or the whole history, so a
-- list's size is bounded whatever the jobs hold.
-- KEYS[1] the zset  ARGV[1] base  ARGV[2] most jobs
-- Returns {{id, kind, queue, status, attempts, max_attempts, created_at, run_at, started_at,
-- finished_at, last error entry (JSON) or false}, ...}; ids whose record is gone are skipped.
local base, limit = ARGV[1], tonumber(ARGV[2])
if not limit or limit < 1 then error('bad limit') end
local out = {}
for _, id in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, limit - 1)) do
  local jk = job_hash(base, id)
  local f = redis.call('HMGET', jk, 's', 'k', 'q', 's', 'n', 'm', 'c', 'r', 't', 'f', 'err_seq')
  if f[1] then
    f[1] = id
    -- An absent attempts count is 0, an absent run_at is created_at.
    f[5] = f[5] or '0'
    f[8] = f[8] or f[7]
    local last = false
    if f[11] then last = redis.call('HGET', jk, err_field(f[11])) end
    f[11] = last
    out[#out + 1] = f
  end
end
return out
