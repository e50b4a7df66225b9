-- summaries: one page of a job list, as short summaries: fixed fields, the last error entry and
-- the progress, never args, results or the whole history, so a page's size is bounded whatever
-- the jobs hold.
-- KEYS[1] the source: a zset (scheduled, retry, dead, done:cancelled), a list (a queue's, or
-- 'finished'), or the processes set (running: every process's in-flight list)
-- ARGV[1] base  ARGV[2] mode: 'asc' | 'desc' (zset by score) | 'queued' (list, next to run
-- first) | 'newest' (list, first pushed last: 'finished') | 'running' (in-flight jobs, longest
-- running first)  ARGV[3] offset into the source
-- ARGV[4] most jobs returned  ARGV[5] most entries looked at  ARGV[6] the status listed
-- ARGV[7] queue ('' any)  ARGV[8] kind ('' any)
-- Returns {next offset or -1 at the end, {{id, kind, queue, status, attempts, max_attempts,
-- created_at, run_at, started_at, finished_at, last error entry (JSON) or false, progress}, ...},
-- {each summary's position in the source (0-based), ...}} (pages merged over several shards
-- resume each shard right after the last of its summaries they used).
-- Entries whose job is gone or no longer has the status (a cancelled id left in a queue list)
-- are passed over, like those the filters refuse; at most ARGV[5] are looked at per call, so a
-- filter that matches little answers a short page and an offset to go on from.
local base, mode = ARGV[1], ARGV[2]
local offset, limit, window = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local want_status, want_queue, want_kind = ARGV[6], ARGV[7], ARGV[8]
if not (offset and limit and window) or offset < 0 or limit < 1 or window < 1 then
  error('bad list arguments')
end
-- The most in-flight jobs a running list sorts (every process's, together).
local RUNNING_MAX = 10000

local function summary(id)
  local jk = job_hash(base, id)
  local f = redis.call('HMGET', jk, 's', 'k', 'q', 's', 'n', 'm', 'c', 'r', 't', 'f', 'err_seq',
    'progress', 'C', 'd')
  if not f[1] or f[4] ~= want_status then return nil end
  if (want_queue ~= '' and f[3] ~= want_queue) or (want_kind ~= '' and f[2] ~= want_kind) then
    return nil
  end
  f[1] = id
  -- Times kept as offsets (see created_field, ack_jobs) are made whole; an absent attempts
  -- count is 0, an absent run_at is created_at.
  if not f[7] and f[13] then f[7] = int_text(id_ms(id) + tonumber(f[13])) end
  if not f[10] and f[14] and f[9] then f[10] = int_text(tonumber(f[9]) + tonumber(f[14])) end
  f[13], f[14] = nil, nil
  f[5] = f[5] or '0'
  f[8] = f[8] or f[7]
  local last = false
  if f[11] then last = redis.call('HGET', jk, err_field(f[11])) end
  f[11] = last
  return f
end

-- In-flight ids of every process, oldest start first.
local function running_ids()
  local rows = {}
  for _, process in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    for _, id in ipairs(redis.call('LRANGE', inflight_key(base, process), 0, RUNNING_MAX - 1)) do
      if #rows < RUNNING_MAX then
        rows[#rows + 1] = {id, tonumber(redis.call('HGET', job_hash(base, id), 't')) or 0}
      end
    end
  end
  table.sort(rows, function(a, b)
    if a[2] ~= b[2] then return a[2] < b[2] end
    return a[1] < b[1]
  end)
  local ids = {}
  for i, row in ipairs(rows) do ids[i] = row[1] end
  return ids
end

-- The source's ids from offset on (at most window of them), and the source's length.
local function window_of()
  local last = offset + window - 1
  if mode == 'asc' then
    return redis.call('ZRANGE', KEYS[1], offset, last), redis.call('ZCARD', KEYS[1])
  elseif mode == 'desc' then
    return redis.call('ZREVRANGE', KEYS[1], offset, last), redis.call('ZCARD', KEYS[1])
  elseif mode == 'queued' then
    -- Workers take from the right, so the next to run is the last element.
    local ids = redis.call('LRANGE', KEYS[1], -(last + 1), -(offset + 1))
    local reversed = {}
    for i = #ids, 1, -1 do reversed[#reversed + 1] = ids[i] end
    return reversed, redis.call('LLEN', KEYS[1])
  elseif mode == 'newest' then
    return redis.call('LRANGE', KEYS[1], offset, last), redis.call('LLEN', KEYS[1])
  elseif mode == 'running' then
    local all, ids = running_ids(), {}
    for i = offset + 1, math.min(#all, last + 1) do ids[#ids + 1] = all[i] end
    return ids, #all
  end
  error('bad list mode')
end

local ids, total = window_of()
local out, positions, next_offset = {}, {}, offset + #ids
for i, id in ipairs(ids) do
  local s = summary(id)
  if s then
    out[#out + 1] = s
    positions[#positions + 1] = offset + i - 1
    if #out >= limit then
      next_offset = offset + i
      break
    end
  end
end
if next_offset >= total then next_offset = -1 end
return {next_offset, out, positions}
