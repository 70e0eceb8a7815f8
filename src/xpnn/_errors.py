"""Errors of the written-once code that the dispatch names.

A check inside a public function's definition does not know which public
function it runs for; it raises with ``refuse``, and the dispatch of the
running function re-raises the error as the builtin type with the message
``xpnn.<function>: <message>``.  Called outside a public function (a layer,
an initializer) with ``where``, ``refuse`` names ``where`` itself.
"""
from __future__ import annotations


class _Unnamed(Exception):
    """An error whose message does not name the public function yet."""


class UnnamedTypeError(_Unnamed, TypeError):
    pass


class UnnamedValueError(_Unnamed, ValueError):
    pass


_UNNAMED = {TypeError: UnnamedTypeError, ValueError: UnnamedValueError}


def refuse(kind: type[TypeError] | type[ValueError], message: str, where: str | None = None) -> Exception:
    """The error to raise for a refused argument: ``kind(f"{where}: {message}")`` when ``where``
    is given, else one that the dispatch names after the running public function."""
    return kind(f"{where}: {message}") if where else _UNNAMED[kind](message)


def named(error: Exception, function: str) -> Exception:
    """``error`` (raised by ``refuse`` without ``where``) as its builtin type, its message
    starting with ``xpnn.<function>: ``."""
    return located(error, f"xpnn.{function}")


def located(error: Exception, where: str) -> Exception:
    """``error`` (raised by ``refuse`` without ``where``) as ``refuse`` with ``where`` would have
    raised it: for checks worked out once and named by each caller (a layer's path)."""
    builtin = TypeError if isinstance(error, TypeError) else ValueError
    return builtin(f"{where}: {error}")
