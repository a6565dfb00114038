--- :PingtiStatus, :PingtiGenerateTests and :PingtiCancel: thin wrappers over the server's
--- `pingti/status` request, the "Generate tests" code action and its `pingti.generateTests`
--- command (server/testgen_lsp.py); and the handler of `pingti/backendChanged`, which the
--- server sends when a backend of the `backends` setting goes down or comes back.
---
--- The command writes the tests with workspace/applyEdit: Neovim's default handler creates the
--- file and edits it as a buffer, unsaved. With save_generated_tests the buffer is written once
--- the command answers, so the tests the server says it kept are on disk.

local api = vim.api
local config = require('pingti.config')

local M = {}

M.STATUS = 'pingti/status'
M.BACKEND_CHANGED = 'pingti/backendChanged'
M.ACTION_KIND = 'source.generateTests'
M.COMMAND = 'pingti.generateTests'
local TESTGEN_TOKEN = '^pingti%-testgen%-'

local function notify(msg, level)
  vim.notify('pingti: ' .. msg, level or vim.log.levels.INFO, { title = 'pingti' })
end

--- The pingti client of bufnr (0: current), else any pingti client.
--- @return vim.lsp.Client|nil client, boolean attached
local function client_for(bufnr)
  local client = vim.lsp.get_clients({ bufnr = bufnr, name = config.NAME })[1]
  if client then
    return client, true
  end
  return vim.lsp.get_clients({ name = config.NAME })[1], false
end

-- --- status -----------------------------------------------------------------------------

--- Ask the server for its status; callback(err, result, client).
function M.status(bufnr, callback)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  local client, attached = client_for(bufnr)
  if not client then
    callback({ message = 'no pingti client is running (open a file of a configured filetype)' })
    return
  end
  local params = attached and { uri = vim.uri_from_bufnr(bufnr) } or vim.empty_dict()
  local ok = client:request(M.STATUS, params, function(err, result)
    callback(err, result, client)
  end, attached and bufnr or nil)
  if not ok then
    callback({ message = 'the pingti server is not running' })
  end
end

--- One line for people: version, state, model, and the document's last completion.
function M.format_status(result)
  local parts = { ('pingti-ls %s: %s'):format(result.version or '?', result.state or '?') }
  local model = result.model
  if type(model) == 'table' then
    parts[#parts + 1] = ('%s (%s, %s, %s)'):format(
      model.name or '?',
      model.backend or '?',
      model.device or '?',
      model.quantization or '?'
    )
  end
  local last = result.lastCompletion
  if type(last) == 'table' then
    parts[#parts + 1] = ('last suggestion: %s tokens in %.0f ms (%s)'):format(
      last.generatedTokens or '?',
      (tonumber(last.totalS) or 0) * 1000,
      last.source or '?'
    )
  end
  if result.error then
    parts[#parts + 1] = 'error: ' .. tostring(result.error)
  end
  return table.concat(parts, ' | ')
end

-- A backend's circuit breaker, in words: closed = up, open = down (skipped), half_open = being
-- retried.
local STATE_WORDS = { closed = 'up', open = 'down', half_open = 'retrying' }

local function seconds(s)
  if type(s) ~= 'number' then
    return '-'
  end
  return s < 1 and ('%d ms'):format(math.floor(s * 1000 + 0.5)) or ('%.2f s'):format(s)
end

--- One line per backend of a `pingti/status` result: `*` for the one serving, name, state,
--- p50/p99 latency, errors by kind. None when there is no choice (no `backends` setting, or
--- only the local model). Pure: no editor state.
--- @return string[]
function M.format_backends(result)
  local backends = type(result) == 'table' and result.backends
  if type(backends) ~= 'table' or #backends == 0 then
    return {}
  end
  if #backends == 1 and backends[1].type == 'local' then
    return {}
  end
  local lines = {}
  for _, b in ipairs(backends) do
    local errors = {}
    for kind, n in pairs(type(b.errors) == 'table' and b.errors or {}) do
      if type(n) == 'number' and n > 0 then
        errors[#errors + 1] = ('%s %d'):format(kind, n)
      end
    end
    table.sort(errors)
    lines[#lines + 1] = ('%s %s: %s, p50 %s, p99 %s, errors: %s'):format(
      b.active == true and '*' or ' ',
      tostring(b.name or '?'),
      STATE_WORDS[b.state] or tostring(b.state or '?'),
      seconds(b.latencyP50S),
      seconds(b.latencyP99S),
      #errors > 0 and table.concat(errors, ', ') or 'none'
    )
  end
  return lines
end

function M.show_status()
  M.status(0, function(err, result)
    if err then
      notify(err.message or vim.inspect(err), vim.log.levels.ERROR)
    else
      local lines = { M.format_status(result) }
      vim.list_extend(lines, M.format_backends(result))
      notify(table.concat(lines, '\n'), result.error and vim.log.levels.WARN or nil)
    end
  end)
end

--- How loud a `pingti/backendChanged` is: a warning when a backend went down. Pure.
function M.backend_change_level(params)
  return params.state == 'open' and vim.log.levels.WARN or vim.log.levels.INFO
end

--- Handler of the `pingti/backendChanged` notification: the server's message, as it is.
function M.on_backend_changed(_, params)
  if type(params) ~= 'table' then
    return
  end
  local message = type(params.message) == 'string' and params.message
    or ('%s is %s'):format(tostring(params.backend), STATE_WORDS[params.state] or tostring(params.state))
  notify(message, M.backend_change_level(params))
end

-- --- generate tests ---------------------------------------------------------------------

--- The "Generate tests" code actions at the cursor; callback(err, actions, client).
function M.code_actions(bufnr, callback)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  local client, attached = client_for(bufnr)
  if not client or not attached then
    callback({ message = 'pingti is not attached to this buffer' }, {})
    return
  end
  local win = vim.fn.bufwinid(bufnr)
  local params = vim.lsp.util.make_range_params(win ~= -1 and win or 0, client.offset_encoding)
  params.context = { diagnostics = {}, only = { M.ACTION_KIND }, triggerKind = 1 }
  client:request('textDocument/codeAction', params, function(err, result)
    local found = {}
    for _, action in ipairs(result or {}) do
      -- A CodeAction carries its Command in .command; a bare Command has a string there.
      local cmd = type(action.command) == 'table' and action.command.command or action.command
      if cmd == M.COMMAND then
        found[#found + 1] = action
      end
    end
    callback(err, found, client)
  end, bufnr)
end

--- The test generation in progress: { client_id, id }.
M.running = nil

local function finish_file(result)
  local fname = vim.uri_to_fname(result.testFile)
  local buf = vim.fn.bufnr(fname)
  local opts = config.options
  if opts.save_generated_tests and buf ~= -1 and vim.bo[buf].modified then
    api.nvim_buf_call(buf, function()
      vim.cmd('silent noautocmd write')
    end)
  end
  if opts.open_generated_tests then
    vim.cmd('botright split ' .. vim.fn.fnameescape(fname))
  end
  return fname
end

--- Execute one "Generate tests" action; on_done(err, result) when the server answers.
function M.execute(client, bufnr, action, on_done)
  on_done = on_done or function() end
  local command = type(action.command) == 'table' and action.command
    or { command = action.command, arguments = action.arguments }
  notify(action.title .. ' …')
  -- The server reports progress on a token of its own; show its messages as they come.
  local progress = api.nvim_create_autocmd('LspProgress', {
    callback = function(args)
      local p = args.data and args.data.params
      local value = p and p.value
      if args.data.client_id == client.id and type(p.token) == 'string' and p.token:match(TESTGEN_TOKEN)
        and type(value) == 'table' and value.kind == 'report' and value.message then
        notify(('%s (%d%%)'):format(value.message, value.percentage or 0))
      end
    end,
  })
  local ok, id = client:request('workspace/executeCommand', {
    command = command.command,
    arguments = command.arguments,
  }, function(err, result)
    pcall(api.nvim_del_autocmd, progress)
    M.running = nil
    if err then
      notify('generating tests failed: ' .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
    elseif type(result) == 'table' and result.ok and result.testFile then
      -- The server already showed its summary (window/showMessage).
      local fname = finish_file(result)
      notify('tests written to ' .. vim.fn.fnamemodify(fname, ':~:.'))
    end
    -- When result.ok is false the server has said why (window/showMessage).
    on_done(err, result)
  end, bufnr)
  if ok then
    M.running = { client_id = client.id, id = id, progress = progress, on_done = on_done }
  else
    pcall(api.nvim_del_autocmd, progress)
    on_done({ message = 'the server is not running' })
  end
end

--- :PingtiGenerateTests: offer the code action at the cursor and run the one chosen.
--- @param on_done fun(err, result)|nil called when done (or nothing to do: err set)
function M.generate_tests(on_done)
  on_done = on_done or function() end
  if M.running then
    notify('tests are already being generated (:PingtiCancel stops it)', vim.log.levels.WARN)
    return on_done({ message = 'busy' })
  end
  local bufnr = api.nvim_get_current_buf()
  M.code_actions(bufnr, function(err, actions, client)
    if err then
      notify(err.message or vim.inspect(err), vim.log.levels.ERROR)
      return on_done(err)
    end
    if #actions == 0 then
      notify('no function or class at the cursor to generate tests for', vim.log.levels.WARN)
      return on_done({ message = 'no action' })
    end
    if #actions == 1 then
      return M.execute(client, bufnr, actions[1], on_done)
    end
    vim.ui.select(actions, {
      prompt = 'pingti: generate tests',
      format_item = function(a)
        return a.title
      end,
    }, function(choice)
      if choice then
        M.execute(client, bufnr, choice, on_done)
      else
        on_done({ message = 'cancelled' })
      end
    end)
  end)
end

--- :PingtiCancel: stop the test generation in progress (the server writes nothing then).
function M.cancel()
  local running = M.running
  if not running then
    notify('nothing to cancel')
    return false
  end
  M.running = nil
  local client = vim.lsp.get_client_by_id(running.client_id)
  if client then
    client:cancel_request(running.id)
  end
  -- Neovim drops the answer to a cancelled request: its handler will not run.
  pcall(api.nvim_del_autocmd, running.progress)
  notify('test generation cancelled')
  running.on_done({ message = 'cancelled' })
  return true
end

return M
