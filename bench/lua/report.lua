-- Shared by every wrk scenario: print one JSON line with throughput, latency percentiles and errors.
-- "shed" sums the threads' global `shed` (the 503 service_busy answers a script counts, login.lua's), 0 otherwise.
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  local shed = 0
  for _, thread in ipairs(threads) do
    shed = shed + (thread:get("shed") or 0)
  end
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d, ' ..
    '"errors": %d, "non_2xx": %d, "timeouts": %d, "shed": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.mean,
    latency.max, errors, summary.errors.status, summary.errors.timeout, shed))
end
