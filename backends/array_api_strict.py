"""array-api-strict adapter: the standard and nothing else.

Every primitive is the standard-only fallback, so running the test suite on
array-api-strict proves that the written-once code uses only the standard.
"""
from __future__ import annotations

from ._base import Adapter


class ArrayApiStrictAdapter(Adapter):
    name = "array_api_strict"

    def quietly(self):
        """array-api-strict computes with NumPy: its floating-point warnings off, as on NumPy."""
        from .numpy import _Silence

        return _Silence()

    def device_kind(self, device):
        """The default device (``CPU_DEVICE``) is the CPU; the others are known by themselves only."""
        if device == self.xp.__array_namespace_info__().default_device():
            return "cpu", None
        return super().device_kind(device)


ADAPTER = ArrayApiStrictAdapter
