-- wrk script: loads one sessiond JSON-RPC method, as `sessiond bench` does,
-- so that a second, independent client measures the same thing.
--
--   METHOD=session.get SESSIONS=sessions.txt THREADS=2 \
--     wrk -t2 -c64 -d10s --latency -s bench/wrk/rpc.lua http://127.0.0.1:8080/rpc
--
-- SESSIONS is the output of `sessiond bench --make-sessions N`: a line
-- "bearer TOKEN", then "ID TOKEN" per session. THREADS must equal -t: each
-- thread takes every THREADS-th session, so no session is used by two
-- threads. METHOD is one of session.get, session.state, client.get,
-- session.create_deposit, client.transition.
--
-- client.transition walks each session along a deposit's path to
-- STATE_COMPLETED (8 moves), one request in flight per session: the
-- request's id names the session, and its response puts the session back
-- in the queue at its next state. Give it at least requests/8 sessions.
--
-- A response that is not HTTP 200 or carries a JSON-RPC error is counted,
-- and done() prints the count: a run with errors measured something else.

local method = os.getenv("METHOD") or "session.get"
local sessionsFile = os.getenv("SESSIONS")
local threadCount = tonumber(os.getenv("THREADS") or "1")

local path = { 0, 1, 2, 3, 4, 5, 8, 9, 12 }
local deposit = '{"amount":"10.00","country_id":"se","merchant_reference":"bench"}'

local threads = {}
local created = 0

function setup(thread)
  created = created + 1
  thread:set("index", created)
  table.insert(threads, thread)
end

local bearer
local sessions = {} -- { id =, token =, step = }
local ready = {}    -- a queue of indexes into sessions, for client.transition
local head, tail = 1, 1
local next = 1
local nextId = 0
errors = 0
rpcErrors = 0
exhausted = 0

function init(args)
  if sessionsFile == nil then
    if method ~= "session.create_deposit" then
      error("SESSIONS is required for " .. method)
    end
    return
  end
  local f = assert(io.open(sessionsFile, "r"))
  local n = 0
  for line in f:lines() do
    local b = line:match("^bearer (%S+)$")
    if b then
      bearer = b
    else
      local id, token = line:match("^(%S+) (%S+)$")
      if id then
        if n % threadCount == index - 1 then
          table.insert(sessions, { id = id, token = token, step = 1 })
          ready[tail] = #sessions
          tail = tail + 1
        end
        n = n + 1
      end
    end
  end
  f:close()
  if #sessions == 0 and method ~= "session.create_deposit" then
    error("no sessions for thread " .. index .. " in " .. sessionsFile)
  end
end

local function call(params, id, auth)
  local headers = { ["Content-Type"] = "application/json" }
  if auth and bearer then
    headers["Authorization"] = "Bearer " .. bearer
  end
  local body = '{"jsonrpc":"2.0","method":"' .. method .. '","params":' .. params .. ',"id":' .. id .. '}'
  return wrk.format("POST", nil, headers, body)
end

function request()
  if method == "client.transition" then
    local i = ready[head]
    if i == nil then
      -- Every session is in flight or completed: there were too few.
      exhausted = exhausted + 1
      wrk.thread:stop()
      return call('{}', 0, false)
    end
    ready[head] = nil
    head = head + 1
    local s = sessions[i]
    local to = path[s.step + 1]
    local params = '{"token":"' .. s.token .. '","state":' .. to
    if to == 1 then
      params = params .. ',"bank":{"id":"testbank","name":"Test Bank"}'
    end
    return call(params .. '}', i, false)
  end
  nextId = nextId + 1
  if method == "session.create_deposit" then
    return call(deposit, nextId, true)
  end
  local s = sessions[next]
  next = next % #sessions + 1
  if method == "client.get" then
    return call('{"token":"' .. s.token .. '"}', nextId, false)
  end
  return call('{"id":"' .. s.id .. '"}', nextId, true)
end

function response(status, headers, body)
  local failed = status ~= 200
  if not failed and body:find('"error":', 1, true) then
    failed = true
    rpcErrors = rpcErrors + 1
  end
  if failed then
    errors = errors + 1
  end
  if method == "client.transition" then
    local i = tonumber(body:match('"id":(%d+)[,}]'))
    local s = i and sessions[i]
    if s and not failed then
      s.step = s.step + 1
      if s.step < #path then
        ready[tail] = i
        tail = tail + 1
      end
    end
  end
end

function done(summary, latency, requests)
  local e, r, x = 0, 0, 0
  for _, t in ipairs(threads) do
    e = e + t:get("errors")
    r = r + t:get("rpcErrors")
    x = x + t:get("exhausted")
  end
  io.write(string.format("failed responses: %d (JSON-RPC errors: %d)\n", e, r))
  if x > 0 then
    io.write("ran out of sessions: make more with --make-sessions\n")
  end
end
