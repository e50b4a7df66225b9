-- minutes: the per-minute counts count_minute (prelude) keeps, for the last ARGV[2] minutes.
-- KEYS[1] any key of the shard (routes the call; unused)
-- ARGV[1] base  ARGV[2] how many minutes
-- Returns {the current minute (since the epoch), processed, failed, processed, failed, ...},
-- oldest minute first, zeros where nothing finished.
local base, n = ARGV[1], tonumber(ARGV[2])
if not n or n < 1 then error('bad minutes argument') end
local current = math.floor(now_ms() / 60000)
local out = {current}
for m = current - n + 1, current do
  local f = redis.call('HMGET', minute_key(base, m), 'processed', 'failed')
  out[#out + 1] = tonumber(f[1]) or 0
  out[#out + 1] = tonumber(f[2]) or 0
end
return out
