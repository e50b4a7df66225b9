-- limit_state: what each limit looks like now, and every pause in force. Read only.
-- KEYS[1] limit pauses zset
-- ARGV[1] base  ARGV[2..] limit keys
-- Returns {now ms, {key, running, paused until ms or 0, ...}, {paused key, until ms, ...}}.
local base = ARGV[1]
local now = now_ms()
local states = {}
for i = 2, #ARGV do
  local key = ARGV[i]
  local running = redis.call('ZCOUNT', limit_running_key(base, key), '(' .. now, '+inf')
  local until_ms = tonumber(redis.call('ZSCORE', KEYS[1], key)) or 0
  if until_ms <= now then until_ms = 0 end
  states[#states + 1] = key
  states[#states + 1] = running
  states[#states + 1] = until_ms
end
local pauses = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES')
return {now, states, pauses}
