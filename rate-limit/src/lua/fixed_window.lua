-- Fixed window: KEYS[1] is a hash {s = window start µs, c = count}.
-- ARGV: window µs, limit, n. Returns {allowed, remaining, reset µs, retry µs}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local w = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local start = now - (now % w)
local v = redis.call('HMGET', KEYS[1], 's', 'c')
local count = 0
if v[1] and tonumber(v[1]) == start then
  count = tonumber(v[2])
end
local until_end = start + w - now
if count + n > limit then
  return {0, math.max(limit - count, 0), until_end, until_end}
end
count = count + n
if n > 0 then
  redis.call('HSET', KEYS[1], 's', string.format('%.0f', start), 'c', count)
  redis.call('PEXPIRE', KEYS[1], math.ceil(until_end / 1000) + 1)
end
local reset = 0
if count > 0 then
  reset = until_end
end
return {1, limit - count, reset, 0}
