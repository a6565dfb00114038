"""A syntax constraint applied while the model decodes: it may not emit a token after which the
code can no longer become a valid program.

Two layers, as in XGrammar/llguidance-style constrained decoding, but for real programming
languages whose grammars a regular mask cannot express:

* a lexical layer over the whole vocabulary, vectorised (:mod:`grammar_constraints.vocab`),
  computed once per tokenizer and applied as a mask in microseconds;
* an exact layer, asked lazily about the token the sampler actually picked: is the text still
  a viable prefix of some program? If not, that token is masked and the sampler picks again.

Each language fills the two layers in its own way (:mod:`grammar_constraints.languages`; the
languages themselves are declared in :mod:`server.languages`):

* Python: its own lexer (:mod:`~grammar_constraints.python_lexer`: strings, comments,
  brackets, continuations), whose mask refuses a closer that matches nothing, a line break in
  a one-line string, a character never valid in code; the exact layer is CPython's own parser
  (:mod:`~grammar_constraints.python_oracle`).
* JavaScript, TypeScript (TSX for ``typescriptreact``), Go, Rust, Java, C, C++: one lexer
  configured per dialect (:mod:`~grammar_constraints.clike_lexer`), and tree-sitter's official
  grammars as the exact layer (:mod:`~grammar_constraints.ts_oracle`): the text is viable when
  some short continuation that closes it parses without errors. The lexical layer is the
  closer mask: tokens whose closing brackets match nothing open, in the strict dialects only
  (not JavaScript/TypeScript, where JSX text may hold any bracket).
* Where the continuation search cannot complete a construct, the constraint steps aside for
  the statement that holds it: JSX elements, Rust ``macro_rules!``.

:mod:`grammar_constraints.factory` compiles the table once per tokenizer and gives a fresh
constraint (:mod:`grammar_constraints.processor`, a cursor per sequence) to each sequence.
When generation ends, :mod:`grammar_constraints.finish` checks the completion together with the
text after the cursor (fill-in-the-middle) and cuts it back to the longest acceptable point.
Every layer fails open: when the document is already broken before the cursor, or a check
errs or runs out of time, the token is let through.
"""
