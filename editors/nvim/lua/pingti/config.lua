--- Options of the pingti plugin: defaults, merging, validation, and the server command.
---
--- Invalid options are reported once with vim.notify and replaced by their defaults, so a typo
--- in a user's config never stops the rest of the plugin from working (the server does the same
--- with its settings).

local M = {}

--- The name of the LSP client (vim.lsp.config / vim.lsp.get_clients({ name = ... })).
M.NAME = 'pingti'

M.defaults = {
  -- The server command (a list). nil: `pingti-ls` found on $PATH, or `{python, '-m', 'server'}`
  -- when `python` is set (the interpreter of the environment pingti is installed in).
  cmd = nil,
  python = nil,
  -- Extra environment variables for the server process.
  cmd_env = nil,
  filetypes = { 'python' },
  -- The workspace root (where "Generate tests" puts tests/) is the nearest folder with one of
  -- these; without one the server runs in single-file mode.
  root_markers = { 'pyproject.toml', 'setup.py', 'setup.cfg', '.git' },
  -- Server settings (lua/pingti/settings.lua, :help pingti-settings): backend, model,
  -- constraints, maxTokensSingleLine, debounceMs, candidates, temperature, ... Sent as
  -- initializationOptions and with workspace/didChangeConfiguration (nested under "pingti").
  settings = {},
  -- Show suggestions as ghost text while typing.
  ghost_text = true,
  -- 'auto': Neovim's own vim.lsp.inline_completion where it exists (0.12+), else pingti's.
  -- false: always pingti's (which also has accept-word and accept-line). true: native only.
  native = 'auto',
  -- Client-side debounce of automatic requests in insert mode. Short on purpose: the server
  -- has its own adaptive debounce (setting debounceMs), this one only saves round trips.
  debounce_ms = 75,
  -- Also offer suggestions as completion items (vim.lsp.completion, no autotrigger: call
  -- vim.lsp.completion.get() or map keymaps.complete).
  lsp_completion = false,
  -- Show "(2/3)" after the suggestion when the server offered several.
  show_index = true,
  -- Insert-mode keys; false disables one. accept falls back to the key itself (a real <Tab>)
  -- when no suggestion is shown, dismiss too.
  keymaps = {
    accept = '<Tab>',
    accept_word = '<M-w>',
    accept_line = '<M-l>',
    next = '<M-]>',
    prev = '<M-[>',
    dismiss = '<C-]>',
    suggest = '<M-\\>',
    complete = false,
  },
  -- "Generate tests": save the test file the server wrote into (it arrives as an unsaved
  -- buffer edit) and open it in a split.
  save_generated_tests = true,
  open_generated_tests = true,
  -- Called as on_attach(client, bufnr) after pingti's own set-up of a buffer.
  on_attach = nil,
}

local TYPES = {
  cmd = { 'table', 'nil' },
  python = { 'string', 'nil' },
  cmd_env = { 'table', 'nil' },
  filetypes = 'table',
  root_markers = 'table',
  settings = 'table',
  ghost_text = 'boolean',
  native = { 'boolean', 'string' },
  debounce_ms = 'number',
  lsp_completion = 'boolean',
  show_index = 'boolean',
  keymaps = 'table',
  save_generated_tests = 'boolean',
  open_generated_tests = 'boolean',
  on_attach = { 'function', 'nil' },
}

--- The options in force (set by setup()).
M.options = vim.deepcopy(M.defaults)

local function type_ok(value, want)
  for _, t in ipairs(type(want) == 'table' and want or { want }) do
    if type(value) == t then
      return true
    end
  end
  return false
end

--- Merge user options over the defaults; invalid ones fall back to their default.
--- @param user table|nil
--- @return table options, string[] errors
function M.resolve(user)
  local opts = vim.deepcopy(M.defaults)
  local errors = {}
  for key, value in pairs(user or {}) do
    local want = TYPES[key]
    if want == nil then
      errors[#errors + 1] = ('unknown option %q (ignored)'):format(key)
    elseif not type_ok(value, want) then
      errors[#errors + 1] = ('option %q should be %s, got %s (default used)'):format(
        key,
        table.concat(type(want) == 'table' and want or { want }, ' or '),
        type(value)
      )
    elseif key == 'keymaps' then
      opts.keymaps = vim.tbl_extend('force', opts.keymaps, value)
    elseif key == 'native' and type(value) == 'string' and value ~= 'auto' then
      errors[#errors + 1] = 'option "native" should be "auto", true or false (default used)'
    elseif key == 'debounce_ms' and value < 0 then
      errors[#errors + 1] = 'option "debounce_ms" should be >= 0 (default used)'
    else
      opts[key] = value
    end
  end
  return opts, errors
end

--- The server command: the `cmd` option, else `{python, '-m', 'server'}`, else `pingti-ls`.
--- @param opts table
--- @return string[]|nil cmd, string|nil why
function M.server_cmd(opts)
  if opts.cmd then
    return opts.cmd
  end
  if opts.python then
    return { opts.python, '-m', 'server' }
  end
  if vim.fn.executable('pingti-ls') == 1 then
    return { 'pingti-ls' }
  end
  return nil,
    '`pingti-ls` is not on $PATH: set `cmd = { "/path/to/.venv/bin/pingti-ls" }` '
      .. 'or `python = "/path/to/.venv/bin/python"`'
end

--- Whether this Neovim has the native inline completion and the options ask for it.
--- @param opts table
function M.use_native(opts)
  local ic = vim.lsp.inline_completion
  local has = type(ic) == 'table' and ic.enable ~= nil and ic.get ~= nil and ic.select ~= nil
  if opts.native == 'auto' then
    return has
  end
  return opts.native == true and has
end

return M
