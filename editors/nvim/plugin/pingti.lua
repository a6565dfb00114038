-- pingti: user commands and highlight groups. Nothing starts until require('pingti').setup().
if vim.g.loaded_pingti then
  return
end
vim.g.loaded_pingti = true

local function highlights()
  vim.api.nvim_set_hl(0, 'PingtiSuggestion', { link = 'Comment', default = true })
  vim.api.nvim_set_hl(0, 'PingtiSuggestionIndex', { link = 'NonText', default = true })
end
highlights()
vim.api.nvim_create_autocmd('ColorScheme', {
  group = vim.api.nvim_create_augroup('pingti.highlights', { clear = true }),
  callback = highlights,
})

local command = vim.api.nvim_create_user_command
command('PingtiStatus', function()
  require('pingti.commands').show_status()
end, { desc = 'pingti: server state and model' })
command('PingtiGenerateTests', function()
  require('pingti.commands').generate_tests()
end, { desc = 'pingti: generate tests for the function or class at the cursor' })
command('PingtiCancel', function()
  require('pingti.commands').cancel()
end, { desc = 'pingti: stop generating tests' })
command('PingtiToggle', function()
  require('pingti').toggle()
end, { desc = 'pingti: automatic suggestions on/off' })
