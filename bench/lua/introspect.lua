-- POST /api/v1/oauth/introspect (RFC 7662) with the tokens of many users, one per request in turn, as an
-- internal service calls it: a form body and the HTTP Basic credentials of INTROSPECTION_BASIC ("id:secret").
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
local tokens = {}
for line in io.lines(os.getenv("TOKENS_FILE")) do tokens[#tokens + 1] = line end
local auth = "Basic " .. os.getenv("INTROSPECTION_BASIC_B64")
local i = 0
request = function()
  i = i % #tokens + 1
  return wrk.format("POST", "/api/v1/oauth/introspect", {
    ["Authorization"] = auth,
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }, "token=" .. tokens[i])
end
