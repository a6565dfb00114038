--- Neovim 0.12+: the built-in vim.lsp.inline_completion draws and accepts the suggestions;
--- this module only enables it per buffer and maps pingti's keys onto it.
---
--- The built-in module has no "accept a word" or "dismiss"; accept-word and accept-line go
--- through get()'s on_accept hook (the item's text, cut to its next word or line, is inserted
--- at the cursor), dismiss disables and re-enables it for the buffer.

local api = vim.api
local ghost = require('pingti.ghost')

local M = {}

function M.attach(bufnr)
  vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
end

function M.detach(bufnr)
  pcall(vim.lsp.inline_completion.enable, false, { bufnr = bufnr })
end

--- Accept the suggestion shown (scheduled by Neovim); false when none is shown.
function M.accept()
  return vim.lsp.inline_completion.get() == true
end

local function insert_at_cursor(text)
  local row, col = unpack(api.nvim_win_get_cursor(0))
  local lines = vim.split(text, '\n', { plain = true })
  api.nvim_buf_set_text(0, row - 1, col, row - 1, col, lines)
  api.nvim_win_set_cursor(0, { row - 1 + #lines, (#lines == 1 and col or 0) + #lines[#lines] })
end

--- Accept only the next word ('word') or line ('line') of the suggestion shown.
function M.accept_part(part)
  return vim.lsp.inline_completion.get({
    on_accept = function(item)
      local text = item.insert_text
      if type(text) ~= 'string' then
        return
      end
      insert_at_cursor(part == 'word' and ghost.next_word(text) or ghost.next_line(text))
    end,
  }) == true
end

function M.cycle(count)
  vim.lsp.inline_completion.select({ count = count })
  return true
end

--- Whether Neovim draws a suggestion in bufnr (its extmarks; there is no API for this).
function M.visible(bufnr)
  local ns = api.nvim_get_namespaces()['nvim.lsp.inline_completion']
  return ns ~= nil and #api.nvim_buf_get_extmarks(bufnr, ns, 0, -1, { limit = 1 }) > 0
end

function M.dismiss(bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  if not M.visible(bufnr) then
    return false
  end
  vim.lsp.inline_completion.enable(false, { bufnr = bufnr })
  vim.lsp.inline_completion.enable(true, { bufnr = bufnr })
  return true
end

return M
