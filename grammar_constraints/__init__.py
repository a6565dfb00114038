"""A syntax constraint applied while the model decodes: it may not emit a token after which the
code can no longer become a valid program.

Two layers, as in XGrammar/llguidance-style constrained decoding, but for a real programming
language whose grammar a regular mask cannot express:

* a lexical layer over the whole vocabulary, vectorised (:mod:`grammar_constraints.vocab`):
  brackets that close what is not open, a line break inside a one-line string, characters that
  never occur in code — computed once per tokenizer, applied as a mask in microseconds;
* an exact layer (:mod:`grammar_constraints.python_oracle`), asked lazily about the token the
  sampler actually picked: is the text still a viable prefix of some program? If not, that
  token is masked and the sampler picks again.

When generation ends, :mod:`grammar_constraints.finish` checks the completion together with the
text after the cursor (fill-in-the-middle) and cuts it back to the longest acceptable point.
"""
