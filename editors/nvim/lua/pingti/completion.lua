--- Suggestions as completion items (vim.lsp.completion, the `lsp_completion` option).
---
--- NOTE: Neovim 0.11 inserts a plain-text item's textEdit only up to its first white space
--- ("return" of "return x + 1"), and a multi-line one not at all. The server's items are plain
--- text, so `convert` turns them into snippets (escaped, so nothing in them is a placeholder):
--- on CompleteDone Neovim then replaces the word with the whole suggestion via vim.snippet.
--- vim.snippet re-indents continuation lines by the current line's indent, so that indent is
--- taken off them first.

local api = vim.api

local M = {}

local PLAIN, SNIPPET = 1, 2

local function escape(text)
  return (text:gsub('[\\$}]', '\\%0'))
end

--- vim.lsp.completion's `convert` hook: adjusts pingti's items in place, overrides nothing.
--- @param item lsp.CompletionItem
function M.convert(item)
  local edit = item.textEdit
  if item.detail ~= 'pingti' or (item.insertTextFormat or PLAIN) ~= PLAIN or not edit or not edit.newText then
    return {}
  end
  local indent = api.nvim_get_current_line():match('^%s*')
  local lines = vim.split(edit.newText, '\n', { plain = true })
  for i = 2, #lines do
    if lines[i]:sub(1, #indent) == indent then
      lines[i] = lines[i]:sub(#indent + 1)
    end
  end
  edit.newText = escape(table.concat(lines, '\n'))
  item.insertTextFormat = SNIPPET
  return {}
end

function M.enable(client, bufnr)
  vim.lsp.completion.enable(true, client.id, bufnr, { autotrigger = false, convert = M.convert })
end

return M
