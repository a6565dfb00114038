--- pingti/focus: tell the server which buffer the user is in and where the cursor is, so it can
--- evaluate the prompt of a suggestion there while the user reads (prefetch). LSP itself has no
--- such notification: didOpen does not say where the cursor is, and nothing is sent when the user
--- switches buffers or jumps within one.
---
--- Sent on BufEnter/WinEnter (at once) and when the cursor jumps JUMP_LINES or more within the
--- buffer (after it rested DEBOUNCE_MS). Moves by typing are not sent: the completion requests
--- after each keystroke keep the server's cache warm.

local api = vim.api

local M = {
  METHOD = 'pingti/focus',
  JUMP_LINES = 20,
  DEBOUNCE_MS = 300,
}

local last = nil -- { uri, line } of the last notification
local timer = nil
local group = api.nvim_create_augroup('pingti.focus', { clear = true })

--- Whether a cursor at (uri, line) is worth a notification: another buffer always, the same one
--- only after a jump.
function M.should_send(uri, line)
  return last == nil or last.uri ~= uri or math.abs(last.line - line) >= M.JUMP_LINES
end

function M.reset()
  last = nil
end

--- Send the focus of the current window's buffer to its pingti client(s).
--- @param force boolean|nil send even if it is not a switch or a jump
function M.send(force)
  local bufnr = api.nvim_get_current_buf()
  local clients = vim.lsp.get_clients({ bufnr = bufnr, name = require('pingti.config').NAME })
  if #clients == 0 then
    return false
  end
  local uri = vim.uri_from_bufnr(bufnr)
  local line = api.nvim_win_get_cursor(0)[1] - 1
  if not force and not M.should_send(uri, line) then
    return false
  end
  last = { uri = uri, line = line }
  for _, client in ipairs(clients) do
    local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
    client:notify(M.METHOD, { textDocument = params.textDocument, position = params.position })
  end
  return true
end

local function debounced()
  if timer then
    timer:stop()
  else
    timer = vim.uv.new_timer()
  end
  timer:start(M.DEBOUNCE_MS, 0, vim.schedule_wrap(function()
    M.send(false)
  end))
end

--- Follow a buffer the pingti client attached to.
function M.attach(bufnr)
  api.nvim_clear_autocmds({ group = group, buffer = bufnr })
  api.nvim_create_autocmd({ 'BufEnter', 'WinEnter' }, {
    group = group,
    buffer = bufnr,
    callback = function()
      M.send(false)
    end,
  })
  api.nvim_create_autocmd('CursorMoved', {
    group = group,
    buffer = bufnr,
    callback = debounced,
  })
  if bufnr == api.nvim_get_current_buf() then
    M.send(true)
  end
end

function M.detach(bufnr)
  api.nvim_clear_autocmds({ group = group, buffer = bufnr })
end

return M
