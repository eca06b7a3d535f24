-- GET /api/v1/users/me with the tokens of many users, one per request in turn.
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
-- TOKENS_FILE: one access token per line.
local tokens = {}
for line in io.lines(os.getenv("TOKENS_FILE")) do tokens[#tokens + 1] = line end
local i = 0
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", "/api/v1/users/me", { ["Authorization"] = "Bearer " .. tokens[i] })
end
