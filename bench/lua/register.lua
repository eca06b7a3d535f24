-- POST /api/v1/auth/register with a unique email each time: run prefix + thread number + counter.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end
local counter = 0
local run = os.getenv("BENCH_RUN_ID")
local password = os.getenv("BENCH_PASSWORD")
request = function()
  counter = counter + 1
  local body = string.format(
    '{"email": "r%s-%d-%d@bench.example.com", "password": "%s"}', run, thread_id, counter, password)
  return wrk.format("POST", "/api/v1/auth/register", { ["Content-Type"] = "application/json" }, body)
end
