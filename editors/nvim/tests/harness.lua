--- A tiny test harness for headless Neovim: cases run one after another in a coroutine that
--- sleeps on timers, so Neovim's main loop keeps running between steps and keys sent with
--- nvim_input are typed as a person would type them (insert mode, autocmds, mappings).
---
--- Every path ends Neovim: results go to $PINGTI_NVIM_RESULT as JSON, then `qa!` (all passed)
--- or `cq` (a failure, a Lua error outside a case, or the watchdog). Headless Neovim would
--- otherwise wait forever after an error.

local H = {}

local results = {}
local cases = {}
local result_path = assert(os.getenv('PINGTI_NVIM_RESULT'), 'PINGTI_NVIM_RESULT not set')
local finished = false

local function write_results(extra)
  local f = assert(io.open(result_path, 'w'))
  f:write(vim.json.encode({ cases = results, error = extra }))
  f:close()
end

--- End Neovim with the results written; code 0 only when every case passed.
function H.finish(extra)
  if finished then
    return
  end
  finished = true
  local ok = extra == nil
  for _, r in ipairs(results) do
    ok = ok and r.ok
  end
  local wrote = pcall(write_results, extra)
  -- os.exit would skip stopping the LSP client; :qa! stops it and waits for the server.
  vim.schedule(function()
    vim.cmd(ok and wrote and 'qa!' or 'cq! 1')
  end)
end

local function resume(co, ...)
  local ok, err = coroutine.resume(co, ...)
  if not ok then
    H.finish('harness error: ' .. debug.traceback(co, tostring(err)))
  end
end

--- Sleep for ms, letting Neovim run (typing, LSP messages, timers).
function H.sleep(ms)
  local co = assert(coroutine.running(), 'H.sleep outside the test coroutine')
  vim.defer_fn(function()
    resume(co)
  end, ms)
  coroutine.yield()
end

--- Wait until fn() returns a truthy value (returned), or fail after timeout_ms.
function H.wait_for(what, fn, timeout_ms)
  local deadline = vim.uv.now() + (timeout_ms or 10000)
  while true do
    local value = fn()
    if value then
      return value
    end
    if vim.uv.now() > deadline then
      error(('timed out after %d ms waiting for %s'):format(timeout_ms or 10000, what), 2)
    end
    H.sleep(20)
  end
end

function H.eq(expected, actual, what)
  if not vim.deep_equal(expected, actual) then
    error(('%s: expected %s, got %s'):format(what or 'value', vim.inspect(expected), vim.inspect(actual)), 2)
  end
end

function H.check(cond, what)
  if not cond then
    error(what or 'check failed', 2)
  end
  return cond
end

--- Register a case; fn(data) may fill `data` for the Python side to look at.
function H.case(name, fn)
  cases[#cases + 1] = { name = name, fn = fn }
end

--- Run the cases (each in its turn, a failure does not stop the rest), then finish.
--- @param timeout_ms integer the watchdog: past it Neovim exits with what it has
function H.run(timeout_ms)
  vim.defer_fn(function()
    H.finish(('watchdog: still running after %d ms'):format(timeout_ms))
  end, timeout_ms)
  local co = coroutine.create(function()
    for _, case in ipairs(cases) do
      local data = {}
      local t0 = vim.uv.hrtime()
      local ok, err = xpcall(case.fn, debug.traceback, data)
      results[#results + 1] = {
        name = case.name,
        ok = ok,
        error = not ok and tostring(err) or nil,
        data = data,
        seconds = (vim.uv.hrtime() - t0) / 1e9,
      }
      -- Leave insert mode and any pending state behind before the next case.
      vim.cmd('stopinsert')
      H.sleep(50)
    end
    H.finish()
  end)
  vim.schedule(function()
    resume(co)
  end)
end

return H
