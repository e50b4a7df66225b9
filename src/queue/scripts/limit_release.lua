-- limit_release: a holder gives back its concurrency slots.
-- KEYS[1] limit pauses zset (unused; names the slot)
-- ARGV[1] base  ARGV[2] holder  ARGV[3..] limit keys
-- Returns how many slots were freed.
local base, holder = ARGV[1], ARGV[2]
local freed = 0
for i = 3, #ARGV do
  freed = freed + redis.call('ZREM', limit_running_key(base, ARGV[i]), holder)
end
return freed
