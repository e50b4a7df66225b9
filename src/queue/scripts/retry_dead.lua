-- retry_dead: queue many dead jobs again at once (POST /jobs/retry?status=dead), oldest first,
-- each as retry.lua would.
-- KEYS[1] dead zset
-- ARGV[1] base  ARGV[2] most jobs retried  ARGV[3] most dead entries looked at
-- ARGV[4] queue ('' any)  ARGV[5] kind ('' any)
-- Returns {retried, remaining}: remaining counts the matching dead jobs left among those looked
-- at, plus every one not looked at (it may match), so a caller repeats while it is above zero.
-- Both bounds keep one call short however large the dead set is.
local base = ARGV[1]
local most, scan, want_queue, want_kind = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5]
if not (most and scan) or most < 1 or scan < 1 then error('bad retry_dead arguments') end
local now = now_ms()
local total = redis.call('ZCARD', KEYS[1])
local ids = redis.call('ZRANGE', KEYS[1], 0, scan - 1)
local retried, left = 0, 0
for _, id in ipairs(ids) do
  local jk = job_hash(base, id)
  local f = redis.call('HMGET', jk, 's', 'q', 'k')
  if not f[1] then
    -- The record expired before the set was trimmed: the id names nothing.
    redis.call('ZREM', KEYS[1], id)
  elseif f[1] == 'dead' and f[2] and redis.call('HEXISTS', jk, 'L') == 0
      and (want_queue == '' or f[2] == want_queue) and (want_kind == '' or f[3] == want_kind) then
    if retried < most then
      redis.call('ZREM', KEYS[1], id)
      ready_again(base, jk, id, f[2], now)
      retried = retried + 1
    else
      left = left + 1
    end
  end
end
return {retried, left + math.max(0, total - #ids)}
