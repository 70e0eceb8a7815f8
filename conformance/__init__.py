"""xpnn's cross-framework conformance suite.

``python -m conformance`` (or ``python -m xpnn.conformance`` once installed)
runs every public xpnn function on every installed backend and compares it
with the reference frameworks: ``jax.nn`` for the main API, ``torch.nn.functional``
for the torch-style names.  The cases are data (:mod:`.cases`); the test suite
uses the same table.
"""
