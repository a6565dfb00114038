--- :checkhealth pingti: Neovim version, the server command, the names in the `settings` option,
--- running clients and the server's own state (pingti/status).

local config = require('pingti.config')

local M = {}

local function check_neovim()
  local v = vim.version()
  local version = ('%d.%d.%d'):format(v.major, v.minor, v.patch)
  if vim.fn.has('nvim-0.11') == 0 then
    vim.health.error('Neovim ' .. version .. ' is too old', 'pingti needs Neovim 0.11 or newer')
    return
  end
  local native = config.use_native(config.options)
  vim.health.ok(
    ('Neovim %s: ghost text by %s'):format(
      version,
      native and 'vim.lsp.inline_completion (built in)' or 'pingti (vim.lsp.inline_completion arrives in 0.12)'
    )
  )
end

local function check_server()
  local cmd, why = config.server_cmd(config.options)
  if not cmd then
    vim.health.error(why)
    return
  end
  if vim.fn.executable(cmd[1]) == 0 then
    vim.health.error(('server command not executable: %s'):format(cmd[1]), {
      'install pingti (bash scripts/setup.sh in its repository) and point `cmd` or `python` at its .venv',
    })
    return
  end
  local args = vim.list_extend(vim.deepcopy(cmd), { '--version' })
  local ok, res = pcall(function()
    return vim.system(args, { text = true, env = config.options.cmd_env }):wait(20000)
  end)
  if not ok then
    vim.health.error(('could not run %s: %s'):format(table.concat(args, ' '), res))
  elseif res.code ~= 0 then
    vim.health.error(
      ('%s exited with %s'):format(table.concat(args, ' '), tostring(res.code)),
      { vim.trim(res.stderr or '') }
    )
  else
    vim.health.ok(('server: %s (%s)'):format(vim.trim(res.stdout or ''), table.concat(cmd, ' ')))
  end
end

--- Names in the `settings` option that are no server setting (lua/pingti/settings.lua, written
--- from the server's schema). Values are left to the server, which reports the invalid ones.
local function check_settings()
  local given = config.options.settings or {}
  if type(given.pingti) == 'table' then
    given = given.pingti
  end
  local known = {}
  for _, s in ipairs(require('pingti.settings')) do
    known[s.name], known[s.field] = true, true
    for _, alias in ipairs(s.aliases or {}) do
      known[alias] = true
    end
  end
  local unknown = {}
  for key in pairs(given) do
    if not known[key] then
      unknown[#unknown + 1] = tostring(key)
    end
  end
  table.sort(unknown)
  if #unknown > 0 then
    vim.health.warn(
      ('not server settings (the server ignores them): %s'):format(table.concat(unknown, ', ')),
      { 'see :help pingti-settings' }
    )
  else
    vim.health.ok(('settings: %d given, all known to the server'):format(vim.tbl_count(given)))
  end
end

local function check_clients()
  local clients = vim.lsp.get_clients({ name = config.NAME })
  if #clients == 0 then
    vim.health.warn('no pingti client is running', {
      ('open a file of a configured filetype (%s)'):format(table.concat(config.options.filetypes, ', ')),
    })
    return
  end
  local commands = require('pingti.commands')
  for _, client in ipairs(clients) do
    local bufs = vim.tbl_keys(client.attached_buffers or {})
    vim.health.ok(('client %d attached to %d buffer(s), root %s'):format(
      client.id,
      #bufs,
      client.root_dir or '(none: single file)'
    ))
    if not (client.server_capabilities or {}).inlineCompletionProvider then
      vim.health.warn('the server does not advertise inlineCompletionProvider')
    end
    local res = client:request_sync(commands.STATUS, vim.empty_dict(), 5000)
    if not res then
      vim.health.warn('pingti/status: no answer within 5 s')
    elseif res.err then
      vim.health.error('pingti/status: ' .. (res.err.message or vim.inspect(res.err)))
    else
      local line = 'server ' .. commands.format_status(res.result)
      local state = res.result.state
      if state == 'ready' then
        vim.health.ok(line)
      elseif state == 'failed' then
        vim.health.error(line)
      else
        vim.health.info(line)
      end
    end
  end
end

function M.check()
  vim.health.start('pingti')
  if not require('pingti').did_setup then
    vim.health.warn('require("pingti").setup() has not been called')
  end
  check_neovim()
  check_server()
  check_settings()
  check_clients()
end

return M
