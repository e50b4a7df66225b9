-- stats: one consistent snapshot of every queue and set, for GET /queues and the metrics line.
-- KEYS[1] known-queues set  KEYS[2] processes set  KEYS[3] scheduled zset  KEYS[4] retry zset
-- KEYS[5] dead zset
-- ARGV[1] base  ARGV[2..] queue names always reported (those this process works)
-- Returns {scheduled, retrying, dead, processes, {name, depth, latency ms, running, ...}}.
local base = ARGV[1]
local now = now_ms()
local names, seen = {}, {}
local function add(name)
  if not seen[name] then seen[name] = true; names[#names + 1] = name end
end
for i = 2, #ARGV do add(ARGV[i]) end
for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do add(name) end
local running = {}
local processes = redis.call('SMEMBERS', KEYS[2])
for _, process in ipairs(processes) do
  for _, id in ipairs(redis.call('LRANGE', base .. 'inflight:' .. process, 0, -1)) do
    local q = redis.call('HGET', job_key(base, id), 'queue')
    if q then add(q); running[q] = (running[q] or 0) + 1 end
  end
end
local queues = {}
for _, name in ipairs(names) do
  local key = base .. 'queue:' .. name
  local latency = 0
  local oldest = redis.call('LINDEX', key, -1)
  if oldest then
    local at = redis.call('HGET', job_key(base, oldest), 'enqueued_at')
    if at then latency = math.max(0, now - tonumber(at)) end
  end
  queues[#queues + 1] = name
  queues[#queues + 1] = redis.call('LLEN', key)
  queues[#queues + 1] = latency
  queues[#queues + 1] = running[name] or 0
end
return {redis.call('ZCARD', KEYS[3]), redis.call('ZCARD', KEYS[4]), redis.call('ZCARD', KEYS[5]), #processes, queues}
