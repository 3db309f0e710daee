-- infergate rate-limit decision for one ShouldRateLimit request: the steps of
-- src/decision.rs `decide`, in one atomic script call.
--
-- KEYS[i]  counter of op i: infergate:rl:<counter-hash>:<window_start>
-- ARGV     7 values per op i, from (i - 1) * 7 + 1:
--            check     0 never (settle), 1 plain (used + hits > limit), 2 reserve (used >= limit)
--            blocking  1 = over rejects the request, 0 = shadow
--            limit, hits
--            replace   0 = used + hits, 1 = max(0, used + hits - reserved)
--            reserved
--            ttl_ms    PX of the counter when written (window length + margin)
-- Returns  {over_limit, over_1, used_1, over_2, used_2, ...}: used_i is op i's counter after
--          the request; when over_limit is 1 nothing is written and used_i is the stored value.
local stored = {}
local tentative = {}
local ttl = {}
local over = {}
local over_limit = 0

for i = 1, #KEYS do
  local key = KEYS[i]
  local a = (i - 1) * 7
  local check = tonumber(ARGV[a + 1])
  local blocking = ARGV[a + 2] == '1'
  local limit = tonumber(ARGV[a + 3])
  local hits = tonumber(ARGV[a + 4])
  local replace = ARGV[a + 5] == '1'
  local reserved = tonumber(ARGV[a + 6])
  local ttl_ms = tonumber(ARGV[a + 7])

  if stored[key] == nil then
    stored[key] = tonumber(redis.call('GET', key) or '0') or 0
    tentative[key] = stored[key]
  end
  local used = tentative[key]
  local is_over = (check == 1 and used + hits > limit) or (check == 2 and used >= limit)
  if is_over then
    over[i] = 1
    if blocking then
      over_limit = 1
    end
  else
    over[i] = 0
  end
  used = used + hits
  if replace then
    used = math.max(0, used - reserved)
  end
  tentative[key] = used
  if ttl[key] == nil or ttl_ms > ttl[key] then
    ttl[key] = ttl_ms
  end
end

local result = { over_limit }
for i = 1, #KEYS do
  local key = KEYS[i]
  result[#result + 1] = over[i]
  if over_limit == 1 then
    result[#result + 1] = stored[key]
  else
    result[#result + 1] = tentative[key]
  end
end

if over_limit == 0 then
  local written = {}
  for i = 1, #KEYS do
    local key = KEYS[i]
    if not written[key] then
      written[key] = true
      redis.call('SET', key, string.format('%d', tentative[key]), 'PX', string.format('%d', ttl[key]))
    end
  end
end

return result
