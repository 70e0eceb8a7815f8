"""xpnn's cross-framework conformance suite.

``python -m conformance`` (or ``python -m xpnn.conformance`` once installed)
runs every public xpnn function, sampler, initializer and layer on every
installed backend and compares it with the reference frameworks: ``jax.nn``,
``jax.random``, ``jax.nn.initializers`` and ``flax.linen`` for the main API,
``torch.nn.functional`` for the torch-style names.  The cases are data
(:mod:`.cases` for functions, :mod:`.models` for the rest); the test suite
uses the same tables.
"""
