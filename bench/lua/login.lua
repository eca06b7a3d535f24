-- POST /api/v1/auth/login for many users in turn. USERS_FILE: one email per line; all share BENCH_PASSWORD.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
local users = {}
for line in io.lines(os.getenv("USERS_FILE")) do users[#users + 1] = line end
local password = os.getenv("BENCH_PASSWORD")
local i = 0
request = function()
  i = i % #users + 1
  local body = string.format('{"login": "%s", "password": "%s"}', users[i], password)
  return wrk.format("POST", "/api/v1/auth/login", { ["Content-Type"] = "application/json" }, body)
end

-- A login shed under load (503 service_busy) waits its Retry-After, as a well-behaved client does, instead of
-- coming straight back (wrk's own loop would otherwise turn shedding into a flood of 503s). wrk calls delay()
-- before each request of this thread's connections: the next one after a 503 waits.
local pause_ms = 0
shed = 0
response = function(status, headers, body)
  if status == 503 then
    shed = shed + 1
    pause_ms = (tonumber(headers["Retry-After"]) or 1) * 1000
  end
end
delay = function()
  local wait = pause_ms
  pause_ms = 0
  return wait
end
