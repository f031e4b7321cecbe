-- Sliding log: KEYS[1] is a sorted set of admissions (score = time µs, member =
-- "time:seq:n"), KEYS[2] a hash {s = sequence, t = cells in the log}; both share a hash tag
-- and a deadline, so they expire together.
-- ARGV: window µs, limit, n. Returns {allowed, remaining, reset µs, retry µs}.
-- Each call touches only the entries that expire (amortized O(1)) and, on a denial, the
-- oldest entries up to the ones whose expiry makes room.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local w = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local function cells(member)
  return tonumber(string.match(member, ':(%d+)$'))
end
local cutoff = string.format('%.0f', now - w)
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff)
local freed = 0
for i = 1, #expired do
  freed = freed + cells(expired[i])
end
if #expired > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', cutoff)
end
local total = 0
local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if #newest > 0 then
  total = tonumber(redis.call('HGET', KEYS[2], 't') or 0) - freed
  if freed > 0 then
    redis.call('HSET', KEYS[2], 't', total)
  end
end
local last = 0
if #newest > 0 then
  last = tonumber(newest[2])
end
if total + n > limit then
  local to_free = total + n - limit
  local retry = w
  local from = 0
  while to_free > 0 do
    local chunk = redis.call('ZRANGE', KEYS[1], from, from + 31, 'WITHSCORES')
    if #chunk == 0 then
      break
    end
    for i = 1, #chunk, 2 do
      retry = tonumber(chunk[i + 1]) + w - now
      to_free = to_free - cells(chunk[i])
      if to_free <= 0 then
        break
      end
    end
    from = from + 32
  end
  return {0, math.max(limit - total, 0), last + w - now, retry}
end
if n > 0 then
  local seq = redis.call('HINCRBY', KEYS[2], 's', 1)
  local at = string.format('%.0f', now)
  redis.call('ZADD', KEYS[1], at, at .. ':' .. seq .. ':' .. n)
  total = total + n
  redis.call('HSET', KEYS[2], 't', total)
  redis.call('PEXPIRE', KEYS[1], math.ceil(w / 1000) + 1)
  redis.call('PEXPIRE', KEYS[2], math.ceil(w / 1000) + 1)
  last = now
end
local reset = 0
if total > 0 then
  reset = last + w - now
end
return {1, limit - total, reset, 0}
