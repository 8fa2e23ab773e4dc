-- POST an increment to a random counter among 100,000 names (NAMES from the
-- environment sets another count). PREFIX (from the environment) names a
-- fresh set: bench/compare's new-c64 gives each round its own.
wrk.method = "POST"
local prefix = os.getenv("PREFIX") or ""
local names = tonumber(os.getenv("NAMES") or "100000")
local threads = 0
function setup(thread)  -- each thread its own random sequence
  thread:set("index", threads)
  threads = threads + 1
end
function init()
  math.randomseed(os.time() * 16 + (index or 0))
end
request = function()
  return wrk.format(nil, "/counter/obj" .. prefix .. math.random(0, names - 1) .. "/increment")
end
