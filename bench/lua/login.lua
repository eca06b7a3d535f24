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
