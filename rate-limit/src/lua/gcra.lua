-- GCRA: KEYS[1] holds the theoretical arrival time (µs, Redis server time).
-- ARGV: emission interval µs, burst, n. Returns {allowed, remaining, reset µs, retry µs}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local T = tonumber(ARGV[1])
local tau = T * tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or 0)
local base = math.max(tat, now)
local new = base + n * T
local ahead = new - now
if ahead > tau then
  return {0, math.floor((tau - (base - now)) / T), base - now, ahead - tau}
end
if n > 0 then
  -- The key expires exactly when the bucket is full again: idle keys cost nothing.
  redis.call('SET', KEYS[1], string.format('%.0f', new), 'PX', math.ceil(ahead / 1000) + 1)
end
return {1, math.floor((tau - ahead) / T), ahead, 0}
