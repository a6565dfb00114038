--- pingti for Neovim: starts `pingti-ls` for the configured filetypes and shows its suggestions
--- as ghost text (Neovim's own vim.lsp.inline_completion on 0.12+, pingti's on 0.11), with
--- "Generate tests" and a status request on top. See :help pingti.
---
--- require('pingti').setup({ settings = { backend = 'llama.cpp' } })

local api = vim.api
local config = require('pingti.config')
local ghost = require('pingti.ghost')

local M = {}

local group = api.nvim_create_augroup('pingti', { clear = true })

local function notify(msg, level)
  vim.notify('pingti: ' .. msg, level or vim.log.levels.INFO, { title = 'pingti' })
end

--- The ghost-text implementation in use: pingti.native (0.12+) or pingti.ghost.
local function engine()
  return config.use_native(config.options) and require('pingti.native') or nil
end

-- Actions of the insert-mode keys: each returns whether it did something.
local actions = {
  accept = function()
    local native = engine()
    if native then
      return native.accept()
    end
    return ghost.accept(0)
  end,
  accept_word = function()
    local native = engine()
    if native then
      return native.accept_part('word')
    end
    return ghost.accept(0, 'word')
  end,
  accept_line = function()
    local native = engine()
    if native then
      return native.accept_part('line')
    end
    return ghost.accept(0, 'line')
  end,
  next = function()
    local native = engine()
    return native and native.cycle(1) or ghost.cycle(0, 1)
  end,
  prev = function()
    local native = engine()
    return native and native.cycle(-1) or ghost.cycle(0, -1)
  end,
  dismiss = function()
    local native = engine()
    return native and native.dismiss() or ghost.dismiss(0)
  end,
  suggest = function()
    -- Neovim's own inline completion asks by itself; it has no "ask now".
    return not engine() and ghost.request(0, ghost.TRIGGER.invoked)
  end,
  complete = function()
    vim.lsp.completion.get()
    return true
  end,
}

-- Keys that do nothing (accept: type themselves) when no suggestion is shown.
local GATED = { accept = 'key', dismiss = 'key', accept_word = '', accept_line = '' }

--- Run one of the actions above (what the keymaps call); returns whether it did something.
--- @param name string accept | accept_word | accept_line | next | prev | dismiss | suggest
function M.action(name)
  return actions[name]()
end

--- Whether a suggestion is on screen in the current buffer.
function M.visible()
  local native = engine()
  if native then
    return native.visible(api.nvim_get_current_buf())
  end
  return ghost.visible(0)
end

--- Accept the suggestion shown; returns false (and does nothing) when there is none. The text
--- goes in right after the caller returns (scheduled), so an <expr> mapping may call it too.
function M.accept()
  if not M.visible() then
    return false
  end
  vim.schedule(function()
    M.action('accept')
  end)
  return true
end

local function set_keymaps(bufnr)
  for name, lhs in pairs(config.options.keymaps) do
    if lhs and actions[name] then
      local gate = GATED[name]
      vim.keymap.set('i', lhs, function()
        if gate and not M.visible() then
          return gate == 'key' and lhs or ''
        end
        -- <Cmd> runs the action outside the expression's text lock, still in insert mode.
        return ('<Cmd>lua require("pingti").action(%q)<CR>'):format(name)
      end, { buffer = bufnr, expr = true, silent = true, desc = 'pingti: ' .. (name:gsub('_', ' ')) })
    end
  end
end

--- Set up a buffer the pingti client attached to.
function M._attach(client, bufnr)
  local opts = config.options
  if opts.ghost_text then
    local native = engine()
    if native then
      native.attach(bufnr)
    else
      ghost.attach(bufnr)
    end
  end
  if opts.lsp_completion then
    require('pingti.completion').enable(client, bufnr)
  end
  require('pingti.focus').attach(bufnr)
  set_keymaps(bufnr)
  if opts.on_attach then
    opts.on_attach(client, bufnr)
  end
end

local function lsp_config(opts, cmd)
  local settings = opts.settings
  local empty = next(settings) == nil
  return {
    cmd = cmd,
    cmd_env = opts.cmd_env,
    filetypes = opts.filetypes,
    root_markers = opts.root_markers,
    -- An empty table would be sent as a JSON list; the server wants an object.
    init_options = empty and vim.empty_dict() or settings,
    settings = not empty and { pingti = settings } or nil,
    capabilities = { textDocument = { inlineCompletion = { dynamicRegistration = false } } },
    handlers = {
      -- A backend went down or came back (the `backends` setting).
      ['pingti/backendChanged'] = function(...)
        return require('pingti.commands').on_backend_changed(...)
      end,
    },
  }
end

--- Configure and enable the pingti language server. Safe to call again (the new options
--- apply to clients started afterwards; use configure() to change the server's settings live).
--- @param user table|nil see :help pingti-options
function M.setup(user)
  local opts, errors = config.resolve(user)
  config.options = opts
  for _, err in ipairs(errors) do
    notify(err, vim.log.levels.WARN)
  end
  if vim.fn.has('nvim-0.11') == 0 then
    notify('needs Neovim 0.11 or newer', vim.log.levels.ERROR)
    return
  end
  local cmd, why = config.server_cmd(opts)
  if not cmd then
    notify(why, vim.log.levels.ERROR)
    return
  end
  api.nvim_clear_autocmds({ group = group })
  api.nvim_create_autocmd('LspAttach', {
    group = group,
    callback = function(args)
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      if client and client.name == config.NAME then
        M._attach(client, args.buf)
      end
    end,
  })
  api.nvim_create_autocmd('LspDetach', {
    group = group,
    callback = function(args)
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      if client and client.name == config.NAME then
        ghost.detach(args.buf)
        require('pingti.focus').detach(args.buf)
      end
    end,
  })
  vim.lsp.config(config.NAME, lsp_config(opts, cmd))
  vim.lsp.enable(config.NAME)
  M.did_setup = true
end

--- Change server settings now (workspace/didChangeConfiguration) and for clients started later.
--- @param settings table e.g. { temperature = 0.8, candidates = 3 }
function M.configure(settings)
  local opts = config.options
  opts.settings = vim.tbl_deep_extend('force', opts.settings, settings)
  for _, client in ipairs(vim.lsp.get_clients({ name = config.NAME })) do
    client.settings = { pingti = opts.settings }
    client:notify('workspace/didChangeConfiguration', { settings = { pingti = opts.settings } })
  end
  local cmd = config.server_cmd(opts)
  if cmd and M.did_setup then
    vim.lsp.config(config.NAME, lsp_config(opts, cmd))
  end
end

--- Turn automatic suggestions on or off (manual ones, keymaps.suggest, still work).
function M.toggle()
  ghost.auto = not ghost.auto
  local native = engine()
  if native then
    vim.lsp.inline_completion.enable(ghost.auto)
  elseif not ghost.auto then
    ghost.clear(api.nvim_get_current_buf())
  end
  notify('automatic suggestions ' .. (ghost.auto and 'on' or 'off'))
  return ghost.auto
end

return M
