-- limit_acquire: decides all of a job's limit keys at once, in the order pause, concurrency,
-- rate, and takes every key or none.
-- KEYS[1] limit pauses zset  KEYS[2] the job's rate ticket (mode 'job'; any key in mode 'wait'):
-- a key of the deployment's tag, like every limit key, never the job hash (another shard)
-- ARGV[1] base  ARGV[2] mode  ARGV[3] holder ('<process>|<job id>[|n]')  ARGV[4] hold ms
-- ARGV[5..] three per key: limit key, rate interval ms (0: no rate), concurrency (0: none)
-- Modes: 'job' is a fetched job about to start. A rate wait books the key's next turn for it,
-- notes the turn in the job's ticket key, and refuses it: when the job comes back at
-- its turn the ticket stands for it (it is not booked twice). The ticket is a string key that
-- expires a minute after its turn. 'wait' is a handler
-- waiting in its process: a rate wait books the slot and takes the concurrency at once, and
-- the caller sleeps until the slot.
-- Returns {verdict, wait ms, key}: 'ok' (taken; in mode 'job' the wait is Redis's time, when the
-- job starts, which the caller writes as its started_at), 'booked' (mode 'wait': taken, start after
-- wait ms), or a refusal 'paused', 'concurrency' or 'rate' (come back after wait ms; for
-- 'concurrency' the wait is unknown and 0).
-- Holders are scored by expiry (now + hold ms) and belong to a process: one whose expiry has
-- passed, or whose process's heartbeat is gone (it died), frees its slot here.
local base, mode, holder, hold_ms = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
if not hold_ms or (mode ~= 'job' and mode ~= 'wait') then error('bad limit_acquire arguments') end
local limits = {}
for i = 5, #ARGV, 3 do
  local interval, conc = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  if not (interval and conc) then error('bad limit_acquire arguments') end
  limits[#limits + 1] = {key = ARGV[i], interval = interval, conc = conc}
end
local now = now_ms()
local tk = KEYS[2]

-- A refused job gives up its ticket: a stale one would let it skip the rate later.
local function refuse(verdict, wait, key)
  if mode == 'job' then redis.call('DEL', tk) end
  return {verdict, math.ceil(wait), key}
end

local function holders_below(rk, conc)
  redis.call('ZREMRANGEBYSCORE', rk, '-inf', now)
  if redis.call('ZCARD', rk) < conc then return true end
  for _, member in ipairs(redis.call('ZRANGE', rk, 0, -1)) do
    local process = string.match(member, '^([^|]*)|')
    if not process or redis.call('EXISTS', heartbeat_key(base, process)) == 0 then
      redis.call('ZREM', rk, member)
    end
  end
  return redis.call('ZCARD', rk) < conc
end

for _, l in ipairs(limits) do
  local until_ms = tonumber(redis.call('ZSCORE', KEYS[1], l.key))
  if until_ms and until_ms > now then return refuse('paused', until_ms - now, l.key) end
end
for _, l in ipairs(limits) do
  if l.conc > 0 then
    local rk = limit_running_key(base, l.key)
    if not redis.call('ZSCORE', rk, holder) and not holders_below(rk, l.conc) then
      return refuse('concurrency', 0, l.key)
    end
  end
end

-- Rate: two GCRA clocks per key. 'tat' hands out turns, one 'interval' apart, in order: a job
-- refused for want of a turn books the next one (its ticket). 'atat' runs on actual starts
-- with a tolerance of one interval: a start needs 'atat' - interval <= now. So a job that came
-- late for its turn (promotion and fetch take a few ms) does not push back every turn after it,
-- and yet no window of time sees more than one start beyond the rate (the README's burst).
local ticket = nil
if mode == 'job' then ticket = tonumber(redis.call('GET', tk)) end
local booked = ticket ~= nil and ticket <= now
local turn, turn_key, spacing, spacing_key = 0, '', 0, ''
local tats, rated = {}, {}
for i, l in ipairs(limits) do
  if l.interval > 0 then
    rated[#rated + 1] = i
    local f = redis.call('HMGET', limit_rate_key(base, l.key), 'tat', 'atat')
    local atat = tonumber(f[2])
    if atat and atat - l.interval - now > spacing then
      spacing, spacing_key = atat - l.interval - now, l.key
    end
    if not booked then
      local tat = tonumber(f[1]) or now
      if tat < now then tat = now end
      tats[i] = tat
      if tat - now > turn then turn, turn_key = tat - now, l.key end
    end
  end
end
-- start: when the job starts (now, or its booked turn in mode 'wait'), or nil when booking only.
local function save_rate(i, tat, start)
  local l = limits[i]
  local rk = limit_rate_key(base, l.key)
  if tat then redis.call('HSET', rk, 'tat', string.format('%.3f', tat)) end
  if start then
    local atat = tonumber(redis.call('HGET', rk, 'atat')) or start
    redis.call('HSET', rk, 'atat', string.format('%.3f', math.max(atat, start) + l.interval))
  end
  local f = redis.call('HMGET', rk, 'tat', 'atat')
  local horizon = math.max(tonumber(f[1]) or now, tonumber(f[2]) or now)
  redis.call('PEXPIRE', rk, math.ceil(horizon - now) + 1000)
end
local wait, wait_key = turn, turn_key
if spacing > wait then wait, wait_key = spacing, spacing_key end
-- Not yet: the job's turn is booked now (each key's next turn is its), unless it holds one.
if wait > 0 and mode == 'job' then
  for _, i in ipairs(rated) do
    if tats[i] then save_rate(i, math.max(tats[i], now + wait) + limits[i].interval, nil) end
  end
  if not booked then
    redis.call('SET', tk, now + math.ceil(wait), 'PX', math.ceil(wait) + 60000)
  end
  return {'rate', math.ceil(wait), wait_key}
end
for _, l in ipairs(limits) do
  if l.conc > 0 then
    local rk = limit_running_key(base, l.key)
    redis.call('ZADD', rk, now + hold_ms, holder)
    redis.call('PEXPIRE', rk, hold_ms)
  end
end
-- Starts now, or (mode 'wait') at its booked turn after 'wait'.
for _, i in ipairs(rated) do
  local tat = tats[i] and math.max(tats[i], now + wait) + limits[i].interval
  save_rate(i, tat, now + wait)
end
if mode == 'job' then
  -- Started now, not when it was fetched: the caller writes now to the record (its shard).
  redis.call('DEL', tk)
  return {'ok', now, ''}
end
if wait > 0 then return {'booked', math.ceil(wait), wait_key} end
return {'ok', 0, ''}
