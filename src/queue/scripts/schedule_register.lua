-- schedule_register: remember since when each schedule has existed, so that a new schedule (or
-- one whose pattern or time zone changed) never catches up a tick from before it existed.
-- Every process runs it at start; only the first sighting of a signature writes.
-- KEYS: the schedules' hashes, in the order of the name/signature pairs.
-- ARGV[1] base  ARGV[2k] name  ARGV[2k+1] signature (pattern and time zone)
-- Returns Redis's time in ms.
local now = now_ms()
for i = 1, #KEYS do
  local signature = ARGV[2 * i + 1]
  if not signature then error('bad schedule_register arguments') end
  if redis.call('HGET', KEYS[i], 'signature') ~= signature then
    redis.call('HSET', KEYS[i], 'name', ARGV[2 * i], 'signature', signature, 'since', now)
  end
end
return now
