"""Side-by-side timings of xpnn against the native frameworks (``python -m benchmarks``)."""
