--- Ghost text: pingti's own inline completion (Neovim 0.11, or `native = false` on 0.12+).
---
--- Per buffer it keeps a debounce timer, the request in flight (cancelled when a newer one is
--- sent) and the items of the last answer with the index of the one shown. An item is stored as
--- the buffer range it replaces (0-based rows, byte columns) and its text; what is drawn is the
--- text minus what is already in the buffer between the range's start and the cursor. So typing
--- the suggestion's own characters keeps the rest on screen with no round trip, and typing
--- anything else hides it (the next answer brings a new one).
---
--- NOTE: 0.11's client has no handler for textDocument/inlineCompletion, so requests go through
--- client:request with the raw method name and our own handler; the server advertises
--- inlineCompletionProvider whatever the client says.

local api = vim.api
local config = require('pingti.config')

local M = {}

M.METHOD = 'textDocument/inlineCompletion'
M.TRIGGER = { invoked = 1, automatic = 2 }
M.ns = api.nvim_create_namespace('pingti')
local group = api.nvim_create_augroup('pingti.ghost', { clear = true })

--- Per-buffer state; see the module docstring.
--- @type table<integer, table>
local states = {}

--- Whether automatic (as-you-type) suggestions are on (:PingtiToggle).
M.auto = true

local function state(bufnr)
  local s = states[bufnr]
  if not s then
    s = { items = {}, index = 0, seq = 0 }
    states[bufnr] = s
  end
  return s
end

local function client_for(bufnr)
  return vim.lsp.get_clients({ bufnr = bufnr, name = config.NAME })[1]
end

local function in_insert_mode()
  local mode = api.nvim_get_mode().mode
  return mode:sub(1, 1) == 'i' or mode:sub(1, 1) == 'R'
end

--- The window showing bufnr, the current one if it does.
local function window_of(bufnr)
  local win = api.nvim_get_current_win()
  if api.nvim_win_get_buf(win) == bufnr then
    return win
  end
  local other = vim.fn.bufwinid(bufnr)
  return other ~= -1 and other or nil
end

--- 0-based (row, byte col) of the cursor in bufnr's window.
local function cursor(bufnr)
  local win = window_of(bufnr)
  if not win then
    return nil
  end
  local pos = api.nvim_win_get_cursor(win)
  return pos[1] - 1, pos[2]
end

local function line_text(bufnr, row)
  return api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
end

--- Byte column of an LSP position (in the client's position encoding).
local function byte_col(bufnr, pos, encoding)
  local line = line_text(bufnr, pos.line)
  local ok, col = pcall(vim.str_byteindex, line, encoding, pos.character, false)
  return ok and math.min(col, #line) or #line
end

--- A snippet's text as it will read once expanded (placeholders by their default text).
local function snippet_text(value)
  value = value:gsub('%${%d+:([^}]*)}', '%1'):gsub('%$%d+', ''):gsub('%${%d+}', '')
  return value
end

--- LSP InlineCompletionItem[] (or a list) -> our items; see the module docstring.
local function to_items(bufnr, client, result, row, col)
  local raw = result and (result.items or result) or {}
  local items = {}
  for _, r in ipairs(raw) do
    local text, snippet = r.insertText, nil
    if type(text) == 'table' then -- a StringValue: a snippet
      snippet, text = text.value, snippet_text(text.value or '')
    end
    if type(text) == 'string' and text ~= '' then
      local item = {
        text = text,
        snippet = snippet,
        start = { row, col },
        finish = { row, col },
        anchor = { row, col },
        command = r.command,
        client_id = client.id,
      }
      if r.range then
        local s, e = r.range.start, r.range['end']
        item.start = { s.line, byte_col(bufnr, s, client.offset_encoding) }
        item.finish = { e.line, byte_col(bufnr, e, client.offset_encoding) }
      end
      items[#items + 1] = item
    end
  end
  return items
end

--- The text between (r0, c0) and (r1, c1), or nil when (r1, c1) is before (r0, c0).
local function text_between(bufnr, r0, c0, r1, c1)
  if r1 < r0 or (r1 == r0 and c1 < c0) then
    return nil
  end
  local ok, lines = pcall(api.nvim_buf_get_text, bufnr, r0, c0, r1, c1, {})
  return ok and table.concat(lines, '\n') or nil
end

--- Where the item's range ends now: its end moved along with what was typed on its row.
local function current_finish(item, row, col)
  local frow, fcol = item.finish[1], item.finish[2]
  if frow == item.anchor[1] and row == frow then
    return frow, math.max(col, fcol + (col - item.anchor[2]))
  end
  if frow < row or (frow == row and fcol < col) then
    return row, col
  end
  return frow, fcol
end

--- The part of item still to insert at the cursor (row, col), or nil when the buffer no
--- longer agrees with it (text typed that is not the suggestion's, cursor before its start).
function M.remaining(bufnr, item, row, col)
  local typed = text_between(bufnr, item.start[1], item.start[2], row, col)
  if typed == nil or item.text:sub(1, #typed) ~= typed then
    return nil
  end
  return item.text:sub(#typed + 1)
end

local function clear_mark(bufnr, s)
  if s.extmark then
    pcall(api.nvim_buf_del_extmark, bufnr, M.ns, s.extmark)
    s.extmark = nil
  end
end

local function expand_tabs(text, bufnr)
  return (text:gsub('\t', string.rep(' ', vim.bo[bufnr].tabstop)))
end

--- Draw the current item at the cursor (or nothing); returns whether something is shown.
function M.render(bufnr)
  local s = state(bufnr)
  clear_mark(bufnr, s)
  local item = s.items[s.index]
  local row, col = cursor(bufnr)
  if not item or not row or not in_insert_mode() or vim.fn.pumvisible() == 1 then
    return false
  end
  local rest = M.remaining(bufnr, item, row, col)
  if not rest or rest == '' then
    return false
  end
  -- Text the item replaces after the cursor (closing brackets already typed) is not drawn
  -- twice when the suggestion's first line ends with it.
  local frow, fcol = current_finish(item, row, col)
  local lines = vim.split(rest, '\n', { plain = true })
  if frow == row and fcol > col then
    local replaced = line_text(bufnr, row):sub(col + 1, fcol)
    if #lines == 1 and lines[1]:sub(-#replaced) == replaced then
      lines[1] = lines[1]:sub(1, #lines[1] - #replaced)
    end
  end
  local hl = 'PingtiSuggestion'
  local virt_lines = {}
  for i = 2, #lines do
    virt_lines[#virt_lines + 1] = { { expand_tabs(lines[i], bufnr), hl } }
  end
  local virt_text = { { expand_tabs(lines[1], bufnr), hl } }
  if config.options.show_index and #s.items > 1 then
    local tail = virt_lines[#virt_lines] or virt_text
    tail[#tail + 1] = { (' (%d/%d)'):format(s.index, #s.items), 'PingtiSuggestionIndex' }
  end
  s.extmark = api.nvim_buf_set_extmark(bufnr, M.ns, row, col, {
    virt_text = virt_text,
    virt_text_pos = 'inline',
    virt_lines = #virt_lines > 0 and virt_lines or nil,
    hl_mode = 'combine',
  })
  return true
end

--- Cancel the request in flight, if any.
function M.cancel(bufnr)
  local s = state(bufnr)
  if s.timer then
    s.timer:stop()
  end
  local req = s.request
  s.request = nil
  if req then
    local client = vim.lsp.get_client_by_id(req.client_id)
    if client then
      client:cancel_request(req.id)
    end
  end
end

--- Hide the suggestion and forget it (and cancel what is in flight).
function M.clear(bufnr)
  local s = state(bufnr)
  M.cancel(bufnr)
  s.seq = s.seq + 1 -- answers still on their way are stale now
  s.items, s.index = {}, 0
  clear_mark(bufnr, s)
end

--- Show these items (InlineCompletionItem-like tables: text, start, finish; as made from a
--- server answer) at the cursor. Public for tests and for other sources of suggestions.
function M.present(bufnr, items, index)
  local s = state(bufnr)
  s.items = items
  s.index = #items > 0 and math.max(1, math.min(index or 1, #items)) or 0
  return M.render(bufnr)
end

--- Ask the server for suggestions at the cursor; the answer is drawn when it arrives.
--- @param kind integer|nil M.TRIGGER.automatic (default) or M.TRIGGER.invoked
--- @return boolean sent
function M.request(bufnr, kind)
  bufnr = bufnr == 0 and api.nvim_get_current_buf() or bufnr
  local client = client_for(bufnr)
  local win = window_of(bufnr)
  if not client or not win then
    return false
  end
  M.cancel(bufnr)
  local s = state(bufnr)
  s.seq = s.seq + 1
  local seq = s.seq
  local row, col = cursor(bufnr)
  local params = vim.lsp.util.make_position_params(win, client.offset_encoding)
  params.context = { triggerKind = kind or M.TRIGGER.automatic }
  local ok, id = client:request(M.METHOD, params, function(err, result)
    if s.seq ~= seq then
      return -- a newer request was sent, or the suggestion was dismissed
    end
    s.request = nil
    if err then
      -- A cancelled request is routine; anything else goes to the LSP log.
      if err.code ~= -32800 then
        vim.lsp.log.warn('pingti: inlineCompletion failed', err)
      end
      return
    end
    if not api.nvim_buf_is_valid(bufnr) then
      return
    end
    M.present(bufnr, to_items(bufnr, client, result, row, col), 1)
  end, bufnr)
  if ok and id then
    s.request = { client_id = client.id, id = id }
  end
  return ok and true or false
end

--- Debounced automatic request (what typing triggers).
function M.schedule(bufnr)
  local s = state(bufnr)
  local delay = config.options.debounce_ms
  if delay <= 0 then
    M.request(bufnr, M.TRIGGER.automatic)
    return
  end
  s.timer = s.timer or vim.uv.new_timer()
  s.timer:stop()
  s.timer:start(
    delay,
    0,
    vim.schedule_wrap(function()
      if api.nvim_buf_is_valid(bufnr) and api.nvim_get_current_buf() == bufnr and in_insert_mode() then
        M.request(bufnr, M.TRIGGER.automatic)
      end
    end)
  )
end

--- TextChangedI / CursorMovedI: keep the suggestion if the text still agrees, ask again.
function M.on_change(bufnr)
  local s = state(bufnr)
  if #s.items > 0 and not M.render(bufnr) then
    local item = s.items[s.index]
    local row, col = cursor(bufnr)
    if not (item and row and M.remaining(bufnr, item, row, col)) then
      s.items, s.index = {}, 0
    end
  end
  if M.auto then
    M.schedule(bufnr)
  end
end

--- The item shown and what of it is left to insert, or nil.
function M.current(bufnr)
  bufnr = bufnr == 0 and api.nvim_get_current_buf() or bufnr
  local s = states[bufnr]
  local item = s and s.extmark and s.items[s.index]
  if not item then
    return nil
  end
  local row, col = cursor(bufnr)
  local rest = row and M.remaining(bufnr, item, row, col)
  if not rest or rest == '' then
    return nil
  end
  return item, rest, row, col
end

--- Whether a suggestion is on screen in bufnr.
function M.visible(bufnr)
  return M.current(bufnr or 0) ~= nil
end

local function set_cursor_after(bufnr, row, col, lines)
  local win = window_of(bufnr)
  if win then
    api.nvim_win_set_cursor(win, { row + #lines, (#lines == 1 and col or 0) + #lines[#lines] })
  end
end

--- The next word of text: leading white space (newlines included) and one word, or one run of
--- punctuation.
function M.next_word(text)
  return text:match('^%s*[%w_]+') or text:match('^%s*[^%w_%s]+') or text
end

--- The rest of the current line of text, or the next line when text starts with a newline.
function M.next_line(text)
  return text:match('^\n[^\n]*') or text:match('^[^\n]+') or text
end

--- Insert the suggestion shown, or its next word or line (`part` = 'word' | 'line').
--- @return boolean accepted
function M.accept(bufnr, part)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  local item, rest, row, col = M.current(bufnr)
  if not item then
    return false
  end
  local s = state(bufnr)
  local piece = rest
  if part == 'word' then
    piece = M.next_word(rest)
  elseif part == 'line' then
    piece = M.next_line(rest)
  end
  if piece ~= rest then
    -- A part: typed in at the cursor; the rest stays on screen (it still agrees).
    local lines = vim.split(piece, '\n', { plain = true })
    api.nvim_buf_set_text(bufnr, row, col, row, col, lines)
    set_cursor_after(bufnr, row, col, lines)
    M.render(bufnr)
    return true
  end
  -- All of it: the item's range (moved along with what was typed) becomes its text.
  M.clear(bufnr)
  local frow, fcol = current_finish(item, row, col)
  local srow, scol = item.start[1], item.start[2]
  if item.snippet then
    api.nvim_buf_set_text(bufnr, srow, scol, frow, fcol, { '' })
    local win = window_of(bufnr)
    if win then
      api.nvim_win_set_cursor(win, { srow + 1, scol })
    end
    vim.snippet.expand(item.snippet)
  else
    local lines = vim.split(item.text, '\n', { plain = true })
    api.nvim_buf_set_text(bufnr, srow, scol, frow, fcol, lines)
    set_cursor_after(bufnr, srow, scol, lines)
  end
  s.items, s.index = {}, 0
  if item.command then
    local client = vim.lsp.get_client_by_id(item.client_id)
    if client then
      client:exec_cmd(item.command, { bufnr = bufnr })
    end
  end
  return true
end

--- Show the next (count > 0) or previous suggestion of the last answer; with none, ask.
function M.cycle(bufnr, count)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  local s = state(bufnr)
  if #s.items == 0 then
    return M.request(bufnr, M.TRIGGER.invoked)
  end
  s.index = (s.index - 1 + count) % #s.items + 1
  return M.render(bufnr)
end

--- Hide the suggestion until the text changes; returns whether one was shown.
function M.dismiss(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and api.nvim_get_current_buf() or bufnr
  local shown = M.visible(bufnr)
  M.clear(bufnr)
  return shown
end

--- What tests and :checkhealth look at.
function M.state(bufnr)
  return states[bufnr]
end

--- Start ghost text in bufnr (called on LspAttach).
function M.attach(bufnr)
  api.nvim_clear_autocmds({ group = group, buffer = bufnr })
  api.nvim_create_autocmd({ 'TextChangedI', 'CursorMovedI' }, {
    group = group,
    buffer = bufnr,
    desc = 'pingti: update ghost text',
    callback = function()
      M.on_change(bufnr)
    end,
  })
  api.nvim_create_autocmd({ 'InsertLeave', 'BufLeave' }, {
    group = group,
    buffer = bufnr,
    desc = 'pingti: hide ghost text',
    callback = function()
      M.clear(bufnr)
    end,
  })
  api.nvim_create_autocmd({ 'BufWipeout', 'BufUnload' }, {
    group = group,
    buffer = bufnr,
    callback = function()
      M.detach(bufnr)
    end,
  })
end

function M.detach(bufnr)
  local s = states[bufnr]
  if s then
    M.cancel(bufnr)
    if s.timer and not s.timer:is_closing() then
      s.timer:close()
    end
    clear_mark(bufnr, s)
    states[bufnr] = nil
  end
  pcall(api.nvim_clear_autocmds, { group = group, buffer = bufnr })
end

return M
