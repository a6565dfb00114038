--- Neovim in a terminal, for a screenshot of the ghost text (tests/editors/test_nvim.py renders
--- the terminal with pyte). Opens $PINGTI_NVIM_FILE, puts the cursor at $PINGTI_NVIM_CURSOR
--- ("row,col", 1-based row), types $PINGTI_NVIM_KEYS, waits for the suggestion, writes what is
--- shown to $PINGTI_NVIM_READY and keeps the screen as it is until $PINGTI_NVIM_DONE exists.

local here = vim.fs.dirname(vim.fs.normalize(debug.getinfo(1, 'S').source:sub(2)))
vim.opt.rtp:prepend(vim.fs.dirname(here))
package.path = here .. '/?.lua;' .. package.path
vim.cmd.runtime('plugin/pingti.lua')

local H = require('harness')
local api = vim.api
local ghost = require('pingti.ghost')

local function env(name)
  return (assert(os.getenv(name), name .. ' not set'))
end

vim.o.laststatus = 2
vim.o.number = true
vim.o.showmode = true
vim.o.shortmess = vim.o.shortmess .. 'I'

require('pingti').setup({
  cmd = vim.json.decode(env('PINGTI_NVIM_CMD')),
  settings = vim.json.decode(env('PINGTI_NVIM_SETTINGS')),
})

H.case('screenshot', function(data)
  vim.cmd.edit(vim.fn.fnameescape(env('PINGTI_NVIM_FILE')))
  local bufnr = api.nvim_get_current_buf()
  H.wait_for('the client', function()
    local c = vim.lsp.get_clients({ bufnr = bufnr, name = 'pingti' })[1]
    return c and c.initialized
  end, 30000)
  -- The first suggestion waits for the model to load: ask until the server is ready.
  local wait_ms = tonumber(os.getenv('PINGTI_NVIM_WAIT_MS') or '') or 10000
  local t0 = vim.uv.now()
  H.wait_for('the model', function()
    local done
    require('pingti.commands').status(bufnr, function(_, result)
      done = result and result.state or 'error'
    end)
    -- NOTE: an answer sent while llama.cpp loads the model can be lost (the server's stdout
    -- is redirected meanwhile), so each status request gets 2 s, then the next one is sent.
    pcall(H.wait_for, 'status', function()
      return done
    end, 2000)
    H.check(done ~= 'failed', 'the model failed to load')
    return done == 'ready'
  end, wait_ms)
  data.ready_after_ms = vim.uv.now() - t0
  local row, col = env('PINGTI_NVIM_CURSOR'):match('(%d+),(%d+)')
  api.nvim_win_set_cursor(0, { tonumber(row), tonumber(col) })
  api.nvim_input(env('PINGTI_NVIM_KEYS'))
  local text = H.wait_for('ghost text', function()
    local s = ghost.state(bufnr)
    local m = api.nvim_buf_get_extmarks(bufnr, ghost.ns, 0, -1, { details = true })[1]
    if m and s and not s.request and not (s.timer and s.timer:is_active()) then
      local d = m[4]
      local parts = { d.virt_text[1][1] }
      for _, vl in ipairs(d.virt_lines or {}) do
        parts[#parts + 1] = vl[1][1]
      end
      return parts
    end
  end, wait_ms)
  vim.cmd('redraw')
  data.ghost_lines = text
  local f = assert(io.open(env('PINGTI_NVIM_READY'), 'w'))
  f:write(vim.json.encode({ ghost_lines = text }))
  f:close()
  H.wait_for('the screenshot to be taken', function()
    return vim.uv.fs_stat(env('PINGTI_NVIM_DONE'))
  end, 30000)
end)

H.run(tonumber(os.getenv('PINGTI_NVIM_WATCHDOG_MS') or '') or 60000)
