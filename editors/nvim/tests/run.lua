--- Entry point of the headless tests: `nvim --headless --clean -S run.lua` with
--- $PINGTI_NVIM_SCRIPT naming the test script. A Lua error while loading that script would leave
--- headless Neovim waiting forever, so it ends Neovim with an exit code instead.
local script = os.getenv('PINGTI_NVIM_SCRIPT')
local ok, err = xpcall(function()
  dofile(assert(script, 'PINGTI_NVIM_SCRIPT not set'))
end, debug.traceback)
if not ok then
  io.stderr:write(('error in %s: %s\n'):format(script, tostring(err)))
  vim.cmd('cquit! 3')
end
