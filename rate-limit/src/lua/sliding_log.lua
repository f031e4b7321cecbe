-- Sliding log: KEYS[1] is a sorted set of admissions (score = time µs, member =
-- "time:seq:n"), KEYS[2] a sequence number; both share a hash tag.
-- ARGV: window µs, limit, n. Returns {allowed, remaining, reset µs, retry µs}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local w = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - w))
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local total = 0
for i = 1, #entries, 2 do
  total = total + tonumber(string.match(entries[i], ':(%d+)$'))
end
local last = 0
if #entries > 0 then
  last = tonumber(entries[#entries])
end
if total + n > limit then
  local to_free = total + n - limit
  local retry = w
  for i = 1, #entries, 2 do
    retry = tonumber(entries[i + 1]) + w - now
    to_free = to_free - tonumber(string.match(entries[i], ':(%d+)$'))
    if to_free <= 0 then
      break
    end
  end
  return {0, math.max(limit - total, 0), last + w - now, retry}
end
if n > 0 then
  local seq = redis.call('INCR', KEYS[2])
  local at = string.format('%.0f', now)
  redis.call('ZADD', KEYS[1], at, at .. ':' .. seq .. ':' .. n)
  redis.call('PEXPIRE', KEYS[1], math.ceil(w / 1000) + 1)
  redis.call('PEXPIRE', KEYS[2], math.ceil(w / 1000) + 1)
  last = now
  total = total + n
end
local reset = 0
if total > 0 then
  reset = last + w - now
end
return {1, limit - total, reset, 0}
