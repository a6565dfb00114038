--- End-to-end test of the pingti plugin in headless Neovim against the real server with its
--- fake backend (server/backends/fake.py: it copies what followed the longest earlier match of
--- the text before the cursor, so each document below fixes the suggestion it gets).
---
--- Run by tests/editors/test_nvim.py:
---   PINGTI_NVIM_SCRIPT=test_plugin.lua PINGTI_NVIM_CMD='["/path/.venv/bin/pingti-ls"]' \
---   PINGTI_NVIM_WORKDIR=/tmp/x PINGTI_NVIM_RESULT=/tmp/x/result.json \
---   nvim --headless --clean -S run.lua

local here = vim.fs.dirname(vim.fs.normalize(debug.getinfo(1, 'S').source:sub(2)))
vim.opt.rtp:prepend(vim.fs.dirname(here)) -- editors/nvim
package.path = here .. '/?.lua;' .. package.path
vim.cmd.runtime('plugin/pingti.lua')

local H = require('harness')
local api = vim.api

local workdir = assert(os.getenv('PINGTI_NVIM_WORKDIR'), 'PINGTI_NVIM_WORKDIR not set')
local sandbox = os.getenv('PINGTI_NVIM_SANDBOX') == '1'

-- Messages the plugin and the server show, for the cases to look at.
local messages = {}
vim.notify = function(msg, level)
  messages[#messages + 1] = { msg = msg, level = level }
end

local pingti = require('pingti')
local ghost = require('pingti.ghost')
local commands = require('pingti.commands')

pingti.setup({
  cmd = vim.json.decode((assert(os.getenv('PINGTI_NVIM_CMD'), 'PINGTI_NVIM_CMD not set'))),
  -- The smallest time budget for "Generate tests" (10 s): one round, no second try.
  settings = { backend = 'fake', testgenTimeBudgetS = 10 },
  debounce_ms = 30,
  lsp_completion = true,
  open_generated_tests = true,
})

-- Every request the plugin sends, recorded by wrapping the client's request method.
local sent = {}
local function record_requests(client)
  if client._pingti_recorded then
    return
  end
  client._pingti_recorded = true
  local request = client.request
  client.request = function(self, method, params, ...)
    sent[#sent + 1] = { method = method, params = vim.deepcopy(params) }
    return request(self, method, params, ...)
  end
end

local function write(path, text)
  vim.fn.mkdir(vim.fs.dirname(path), 'p')
  local f = assert(io.open(path, 'w'))
  f:write(text)
  f:close()
end

--- Open a new file with text, wait for the client; returns bufnr, client.
local function open(name, text)
  local path = workdir .. '/' .. name
  write(path, text)
  vim.cmd('silent! %bwipeout!')
  vim.cmd.edit(vim.fn.fnameescape(path))
  local bufnr = api.nvim_get_current_buf()
  local client = H.wait_for('the pingti client to attach', function()
    local c = vim.lsp.get_clients({ bufnr = bufnr, name = 'pingti' })[1]
    return c and c.initialized and c
  end, 15000)
  record_requests(client)
  return bufnr, client
end

local function lines(bufnr)
  return api.nvim_buf_get_lines(bufnr, 0, -1, false)
end

--- The pingti extmarks of bufnr with their details.
local function marks(bufnr)
  return api.nvim_buf_get_extmarks(bufnr, ghost.ns, 0, -1, { details = true })
end

--- The ghost text on screen as one string (first line, then the virtual lines), or nil.
local function shown(bufnr)
  local m = marks(bufnr)[1]
  if not m then
    return nil
  end
  local d = m[4]
  local parts = {}
  for _, chunk in ipairs(d.virt_text or {}) do
    if chunk[2] == 'PingtiSuggestion' then
      parts[#parts + 1] = chunk[1]
    end
  end
  local text = table.concat(parts)
  for _, vl in ipairs(d.virt_lines or {}) do
    local line = {}
    for _, chunk in ipairs(vl) do
      if chunk[2] == 'PingtiSuggestion' then
        line[#line + 1] = chunk[1]
      end
    end
    text = text .. '\n' .. table.concat(line)
  end
  return text
end

--- The "(i/n)" index shown after the suggestion, or nil.
local function index_shown(bufnr)
  local m = marks(bufnr)[1]
  local d = m and m[4] or {}
  local chunks = d.virt_text or {}
  for _, vl in ipairs(d.virt_lines or {}) do
    chunks = vl
  end
  for _, chunk in ipairs(chunks) do
    if chunk[2] == 'PingtiSuggestionIndex' then
      return vim.trim(chunk[1])
    end
  end
end

--- Wait until no request is in flight or pending in the debounce timer (answers drawn).
local function settle(bufnr)
  H.wait_for('pending inline completions to settle', function()
    local s = ghost.state(bufnr)
    return s and not s.request and not (s.timer and s.timer:is_active())
  end, 10000)
  H.sleep(30)
end

local function wait_shown(bufnr, what)
  return H.wait_for(what or 'ghost text', function()
    return shown(bufnr)
  end, 10000)
end

local function inline_requests()
  return vim.tbl_filter(function(r)
    return r.method == 'textDocument/inlineCompletion'
  end, sent)
end

local DOC = 'def g(x):\n    return x + 1\n\n\ndef f(x):\n    '

H.case('options', function(data)
  local config = require('pingti.config')
  local opts, errors = config.resolve({ debounce_ms = 'soon', bogus = 1, keymaps = { accept = '<C-l>' } })
  data.errors = errors
  H.eq(2, #errors, 'two invalid options reported')
  H.eq(75, opts.debounce_ms, 'invalid debounce_ms falls back to its default')
  H.eq('<C-l>', opts.keymaps.accept, 'keymaps merged')
  H.eq('<M-w>', opts.keymaps.accept_word, 'other keymaps kept')
  H.eq({ '/x/python', '-m', 'server' }, config.server_cmd({ python = '/x/python' }), 'python option')
  -- Neovim 0.12's vim.lsp.inline_completion is used when present (faked here), unless native = false.
  local real = vim.lsp.inline_completion
  vim.lsp.inline_completion = { enable = function() end, get = function() end, select = function() end }
  data.native_auto = config.use_native({ native = 'auto' })
  data.native_off = config.use_native({ native = false })
  vim.lsp.inline_completion = real
  data.native_here = config.use_native({ native = 'auto' })
  H.eq(true, data.native_auto, 'native with auto')
  H.eq(false, data.native_off, 'native = false')
  H.eq(false, data.native_here, 'Neovim 0.11 has none')
end)

H.case('attach', function(data)
  local bufnr, client = open('pkg/attach.py', DOC)
  data.name = client.name
  data.root_dir = client.root_dir
  data.inline_provider = client.server_capabilities.inlineCompletionProvider ~= nil
  data.code_action_provider = client.server_capabilities.codeActionProvider ~= nil
  data.filetype = vim.bo[bufnr].filetype
  H.check(data.inline_provider, 'server advertises inlineCompletionProvider')
end)

H.case('typing_requests_and_shows_ghost_text', function(data)
  local bufnr = open('pkg/typing.py', DOC)
  local before = #inline_requests()
  api.nvim_win_set_cursor(0, { 6, 4 })
  api.nvim_input('Ar')
  local text = wait_shown(bufnr)
  settle(bufnr)
  text = shown(bufnr)
  local reqs = inline_requests()
  data.requests = #reqs - before
  data.trigger_kind = reqs[#reqs].params.context.triggerKind
  data.position = reqs[#reqs].params.position
  data.shown = text
  local m = marks(bufnr)[1]
  data.virt_text_pos = m[4].virt_text_pos
  data.mark_pos = { m[2], m[3] }
  data.line = lines(bufnr)[6]
  H.eq('eturn x + 1', text, 'ghost text')
  H.eq('inline', data.virt_text_pos, 'virt_text_pos')
  H.eq(2, data.trigger_kind, 'triggerKind (Automatic)')
end)

H.case('accept_inserts_the_suggestion', function(data)
  local bufnr = open('pkg/accept.py', DOC)
  api.nvim_win_set_cursor(0, { 6, 4 })
  api.nvim_input('Ar')
  wait_shown(bufnr)
  settle(bufnr)
  data.suggestion = shown(bufnr)
  api.nvim_input('<Tab>')
  H.wait_for('the suggestion in the buffer', function()
    return lines(bufnr)[6] ~= '    r'
  end)
  data.line = lines(bufnr)[6]
  data.lines = lines(bufnr)
  data.cursor = api.nvim_win_get_cursor(0)
  data.mode = api.nvim_get_mode().mode
  H.eq('    return x + 1', data.line, 'line after <Tab>')
  H.eq({ 6, #'    return x + 1' }, data.cursor, 'cursor after <Tab>')
  H.eq('i', data.mode, 'still in insert mode')
end)

H.case('dismiss_then_tab_falls_back', function(data)
  local bufnr = open('pkg/dismiss.py', DOC)
  api.nvim_win_set_cursor(0, { 6, 4 })
  api.nvim_input('Ar')
  wait_shown(bufnr)
  settle(bufnr)
  api.nvim_input('<C-]>')
  H.wait_for('the ghost text to go', function()
    return #marks(bufnr) == 0
  end)
  H.sleep(200) -- nothing changed: no new suggestion comes back
  data.marks_after_dismiss = #marks(bufnr)
  H.eq(0, data.marks_after_dismiss, 'extmarks after <C-]>')
  api.nvim_input('<Tab>')
  H.wait_for('<Tab> to insert white space', function()
    return lines(bufnr)[6] ~= '    r'
  end)
  data.line = lines(bufnr)[6]
  H.check(data.line:match('^    r%s+$'), 'a plain <Tab> after dismiss, got ' .. vim.inspect(data.line))
end)

local BLOCK = 'def g(x):\n    y = x + 1\n    return y\n\n\ndef f(x):'

H.case('multi_line_word_line_and_rest', function(data)
  local bufnr = open('pkg/block.py', BLOCK)
  api.nvim_win_set_cursor(0, { 6, 0 })
  api.nvim_input('A<CR>')
  wait_shown(bufnr)
  settle(bufnr)
  data.shown = shown(bufnr)
  data.virt_lines = #(marks(bufnr)[1][4].virt_lines or {})
  H.eq('y = x + 1\n    return y', data.shown, 'multi-line ghost text')
  H.eq(1, data.virt_lines, 'virt_lines')
  api.nvim_input('<M-w>')
  H.wait_for('accept word', function()
    return lines(bufnr)[7] == '    y'
  end)
  settle(bufnr)
  data.after_word = shown(bufnr)
  H.eq(' = x + 1\n    return y', data.after_word, 'ghost text after accept word')
  api.nvim_input('<M-l>')
  H.wait_for('accept line', function()
    return lines(bufnr)[7] == '    y = x + 1'
  end)
  settle(bufnr)
  api.nvim_input('<Tab>')
  H.wait_for('accept the rest', function()
    return #lines(bufnr) == 8
  end)
  data.lines = lines(bufnr)
  data.cursor = api.nvim_win_get_cursor(0)
  H.eq({ '    y = x + 1', '    return y' }, { data.lines[7], data.lines[8] }, 'accepted block')
  H.eq({ 8, #'    return y' }, data.cursor, 'cursor at the end of the block')
end)

-- Three earlier bodies after the same header: the fake model copies the latest for the greedy
-- candidate and earlier ones for the sampled candidates, so the server offers three distinct ones.
local CYCLE_DOC = 'def g(x):\n    return x + 1\n\n\ndef h(x):\n    return x + 2\n\n\n'
  .. 'def k(x):\n    return x + 3\n\n\ndef f(x):\n    '

H.case('cycle_candidates_from_the_server', function(data)
  -- 'always': typed (automatic) requests get several candidates too, as on a GPU.
  pingti.configure({ candidates = 3, candidatesWhen = 'always' })
  local bufnr = open('pkg/cycle.py', CYCLE_DOC)
  api.nvim_win_set_cursor(0, { 14, 4 })
  api.nvim_input('Ar')
  H.wait_for('three candidates', function()
    return index_shown(bufnr) == '(1/3)'
  end)
  settle(bufnr)
  local seen, texts = { index_shown(bufnr) }, { shown(bufnr) }
  api.nvim_input('<M-]>')
  H.wait_for('next', function()
    return index_shown(bufnr) == '(2/3)'
  end)
  seen[#seen + 1] = index_shown(bufnr)
  texts[#texts + 1] = shown(bufnr)
  api.nvim_input('<M-[><M-[>')
  H.wait_for('previous twice (wraps)', function()
    return index_shown(bufnr) == '(3/3)'
  end)
  seen[#seen + 1] = index_shown(bufnr)
  texts[#texts + 1] = shown(bufnr)
  data.seen = seen
  data.texts = texts
  pingti.configure({ candidates = 4, candidatesWhen = 'auto' }) -- the defaults
end)

H.case('cycle_and_accept_distinct_items', function(data)
  local bufnr = open('pkg/items.py', 'x = ')
  api.nvim_win_set_cursor(0, { 1, 3 })
  ghost.auto = false -- only the items below
  api.nvim_input('A')
  H.wait_for('insert mode', function()
    return api.nvim_get_mode().mode == 'i'
  end)
  local function item(text)
    return { text = text, start = { 0, 4 }, finish = { 0, 4 }, anchor = { 0, 4 } }
  end
  ghost.present(bufnr, { item('1'), item('"two"'), item('[3,\n    4]') })
  data.first = shown(bufnr)
  api.nvim_input('<M-]>')
  H.wait_for('second item', function()
    return shown(bufnr) == '"two"'
  end)
  api.nvim_input('<M-]>')
  H.wait_for('third item', function()
    return shown(bufnr) == '[3,\n    4]'
  end)
  data.third = shown(bufnr)
  api.nvim_input('<Tab>')
  H.wait_for('accept', function()
    return #lines(bufnr) == 2
  end)
  data.lines = lines(bufnr)
  ghost.auto = true
  H.eq({ 'x = [3,', '    4]' }, data.lines, 'accepted third item')
  -- An item whose range starts before the cursor covers what was typed: only the rest shows,
  -- and accepting replaces the range.
  api.nvim_buf_set_lines(bufnr, 0, -1, false, { 'y = pri' })
  api.nvim_win_set_cursor(0, { 1, 7 })
  ghost.auto = false
  ghost.present(bufnr, { { text = 'print(1)', start = { 0, 4 }, finish = { 0, 7 }, anchor = { 0, 7 } } })
  data.ranged_shown = shown(bufnr)
  H.eq('nt(1)', data.ranged_shown, 'ghost text of a ranged item')
  api.nvim_input('<Tab>')
  H.wait_for('ranged accept', function()
    return lines(bufnr)[1] ~= 'y = pri'
  end)
  data.ranged_line = lines(bufnr)[1]
  ghost.auto = true
  H.eq('y = print(1)', data.ranged_line, 'ranged item accepted')
end)

--- Ask for completion items as a key would (<Cmd> runs it in insert mode, where complete() can
--- show the menu) and accept the first one.
local function complete_and_accept(bufnr, data)
  api.nvim_input('<Cmd>lua vim.lsp.completion.get()<CR>')
  H.wait_for('the completion menu', function()
    return vim.fn.pumvisible() == 1
  end)
  local info = vim.fn.complete_info({ 'items' })
  data.labels = vim.tbl_map(function(i)
    return i.abbr
  end, info.items)
  local tick = api.nvim_buf_get_changedtick(bufnr)
  api.nvim_input('<C-n><C-y>')
  H.wait_for('the item to be inserted', function()
    return vim.fn.pumvisible() == 0 and api.nvim_buf_get_changedtick(bufnr) ~= tick
  end)
  H.sleep(100) -- CompleteDone replaces the word with the whole text
end

H.case('lsp_completion_items', function(data)
  -- One item shows a menu only with menuone (the default 'completeopt' inserts it at once).
  vim.opt.completeopt = 'menuone,noselect'
  ghost.auto = false
  local bufnr = open('pkg/complete.py', DOC)
  api.nvim_win_set_cursor(0, { 6, 4 })
  api.nvim_input('Ar')
  H.wait_for('insert mode', function()
    return api.nvim_get_mode().mode == 'i' and lines(bufnr)[6] == '    r'
  end)
  complete_and_accept(bufnr, data)
  data.line = lines(bufnr)[6]
  data.cursor = api.nvim_win_get_cursor(0)
  H.eq('    return x + 1', data.line, 'line after accepting the item')
  -- A block: every line, indented once.
  vim.cmd('stopinsert')
  bufnr = open('pkg/complete_block.py', BLOCK)
  api.nvim_win_set_cursor(0, { 6, 0 })
  api.nvim_input('A<CR>')
  H.wait_for('insert mode', function()
    return api.nvim_get_mode().mode == 'i' and #lines(bufnr) == 7
  end)
  local block = {}
  complete_and_accept(bufnr, block)
  data.block_labels = block.labels
  data.block_lines = lines(bufnr)
  ghost.auto = true
  H.eq({ '    y = x + 1', '    return y' }, vim.list_slice(data.block_lines, 7), 'accepted block item')
end)

H.case('status', function(data)
  local bufnr = open('pkg/status.py', DOC)
  local done
  commands.status(bufnr, function(err, result)
    done = { err = err, result = result }
  end)
  H.wait_for('pingti/status', function()
    return done
  end)
  data.err = done.err
  data.result = done.result
  H.check(not done.err, 'pingti/status failed: ' .. vim.inspect(done.err))
  H.eq('ready', done.result.state, 'state')
  H.eq('fake', done.result.model.backend, 'backend')
  local n = #messages
  vim.cmd('PingtiStatus')
  H.wait_for(':PingtiStatus message', function()
    return #messages > n
  end)
  data.message = messages[#messages].msg
  H.check(data.message:match('ready'), ':PingtiStatus says ready')
end)

H.case('focus', function(data)
  -- Opening a buffer tells the server where the cursor is; a jump of 20+ lines does too, once
  -- the cursor rests; a move of a line does not.
  local focus = require('pingti.focus')
  local body = {}
  for i = 1, 80 do
    body[#body + 1] = ('value_%d = compute(%d)'):format(i, i)
  end
  local bufnr, client = open('pkg/focus.py', table.concat(body, '\n') .. '\n')
  local notified = {}
  local notify = client.notify
  client.notify = function(self, method, params, ...)
    if method == focus.METHOD then
      notified[#notified + 1] = vim.deepcopy(params)
    end
    return notify(self, method, params, ...)
  end
  focus.reset()
  focus.send(true) -- what attaching sent (before this case could record it)
  api.nvim_win_set_cursor(0, { 2, 0 })
  vim.api.nvim_exec_autocmds('CursorMoved', { buffer = bufnr })
  api.nvim_win_set_cursor(0, { 60, 4 })
  vim.api.nvim_exec_autocmds('CursorMoved', { buffer = bufnr })
  H.wait_for('the jump to be reported', function()
    return #notified >= 2
  end, 5000)
  vim.wait(focus.DEBOUNCE_MS + 100)
  data.notified = vim.deepcopy(notified)
  H.eq(2, #notified, 'one for the buffer, one for the jump')
  H.eq(vim.uri_from_bufnr(bufnr), notified[2].textDocument.uri, 'uri')
  H.eq({ line = 59, character = 4 }, notified[2].position, 'position of the jump')
  local done
  commands.status(bufnr, function(err, result)
    done = { err = err, result = result }
  end)
  H.wait_for('pingti/status', function()
    return done
  end)
  data.prefetch = done.result.batching.prefetch
  H.check(data.prefetch.requested >= 2, 'the server took the prefetches')
end)

local MODULE = table.concat({
  '"""Arithmetic helpers."""',
  '',
  '',
  'def double(x):', -- no type hints: no Hypothesis ghostwriter (slow)
  '    """Twice x.',
  '',
  '    >>> double(2)',
  '    4',
  '    >>> double(3)',
  '    7',
  '    >>> double(-1)',
  '    -2',
  '    """',
  '    return 2 * x',
  '',
  '',
  'TOP_LEVEL = 1',
  '',
}, '\n')

H.case('generate_tests', function(data)
  local bufnr = open('mathx.py', MODULE)
  api.nvim_win_set_cursor(0, { 14, 4 }) -- in `return 2 * x`
  local got
  commands.code_actions(bufnr, function(err, actions)
    got = { err = err, actions = actions }
  end)
  H.wait_for('code actions', function()
    return got
  end)
  data.titles = vim.tbl_map(function(a)
    return a.title
  end, got.actions)
  data.kinds = vim.tbl_map(function(a)
    return a.kind
  end, got.actions)
  H.eq({ 'Generate tests for double' }, data.titles, 'code action titles')
  api.nvim_win_set_cursor(0, { 17, 0 }) -- TOP_LEVEL: no action
  got = nil
  commands.code_actions(bufnr, function(err, actions)
    got = { err = err, actions = actions }
  end)
  H.wait_for('code actions', function()
    return got
  end)
  H.eq(0, #got.actions, 'actions on TOP_LEVEL')

  api.nvim_win_set_cursor(0, { 14, 4 })
  local done
  local first_message = #messages + 1
  -- The server asks (window/showMessageRequest) whether to keep the wrong doctest, pinned to
  -- what double returns, as a regression test: the user says yes. (Neovim's own handler would
  -- prompt with inputlist, which a headless test cannot answer.)
  local asked = {}
  local default_handler = vim.lsp.handlers['window/showMessageRequest']
  vim.lsp.handlers['window/showMessageRequest'] = function(_, params)
    asked[#asked + 1] = params.message
    for _, action in ipairs(params.actions or {}) do
      if action.title == 'Keep as regression tests' then
        return action
      end
    end
    return vim.NIL
  end
  vim.cmd('PingtiGenerateTests')
  -- Hook the command's answer: PingtiGenerateTests has no callback, so watch its state.
  H.wait_for('the command to start', function()
    return commands.running
  end, 10000)
  H.wait_for('tests to be generated', function()
    return commands.running == nil
  end, 60000)
  done = true
  vim.lsp.handlers['window/showMessageRequest'] = default_handler
  data.asked = asked
  data.messages = vim.tbl_map(function(m)
    return m.msg
  end, vim.list_slice(messages, first_message))
  local test_file = workdir .. '/tests/test_mathx.py'
  data.test_file_exists = vim.uv.fs_stat(test_file) ~= nil
  if data.test_file_exists then
    local f = assert(io.open(test_file))
    data.test_file = f:read('*a')
    f:close()
    local tbuf = vim.fn.bufnr(test_file)
    data.test_buffer_modified = tbuf ~= -1 and vim.bo[tbuf].modified
    data.test_file_in_window = vim.fn.bufwinid(test_file) ~= -1
  end
  data.sandbox = sandbox
  H.check(done, 'generation finished')
  if sandbox then
    H.check(data.test_file_exists, 'tests/test_mathx.py written: ' .. vim.inspect(data.messages))
    H.check(data.test_file:find('double(2) == 4', 1, true), 'kept the right doctest')
    H.check(not data.test_file:find('double(3) == 7', 1, true), 'dropped the wrong doctest')
    H.eq(1, #data.asked, 'asked once about regression tests')
    H.check(data.asked[1]:find('lock the bug', 1, true), 'the question says what it risks')
    H.check(data.test_file:find('double(3) == 6', 1, true), 'kept it pinned to 6, as agreed')
    H.check(data.test_file:find('# Regression test', 1, true), 'marked as a regression test')
    H.eq(false, data.test_buffer_modified, 'test buffer saved')
    H.check(data.test_file_in_window, 'test file opened')
  else
    H.check(#data.messages > 0, 'a message says why no tests were written')
  end
end)

H.case('checkhealth', function(data)
  open('pkg/health.py', DOC)
  vim.cmd('checkhealth pingti')
  local buf = H.wait_for('the health report', function()
    for _, b in ipairs(api.nvim_list_bufs()) do
      if vim.bo[b].filetype == 'checkhealth' then
        local text = table.concat(api.nvim_buf_get_lines(b, 0, -1, false), '\n')
        if text:find('pingti/status', 1, true) or text:find('server pingti-ls', 1, true) then
          return b
        end
      end
    end
  end, 30000)
  data.report = api.nvim_buf_get_lines(buf, 0, -1, false)
  local text = table.concat(data.report, '\n')
  H.check(text:find('OK Neovim', 1, true), 'OK line for Neovim')
  H.check(text:find('OK server: pingti%-ls'), 'OK line for the server executable')
  H.check(text:find('OK server pingti%-ls [^\n]*: ready'), 'OK line for the server state')
  H.check(not text:find('ERROR', 1, true), 'no ERROR lines')
end)

H.run(tonumber(os.getenv('PINGTI_NVIM_WATCHDOG_MS') or '') or 100000)
