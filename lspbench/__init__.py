"""lsp-bench: measure a code-completion language server over real LSP (pass@k, syntax, latency)."""
