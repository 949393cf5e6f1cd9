"""The TFLite interpreter as a device has it: ai-edge-litert (XNNPACK on by default), else
tflite-runtime (its last release, 2.14, has no int8 XNNPACK: see docs/TOOLCHAIN.md). Imported on
first use, so importing the contract never loads a runtime."""

from __future__ import annotations

import importlib
from importlib import metadata

from contract.errors import UserError

__all__ = ["interpreter_class", "runtime_name", "runtime_version", "MAX_THREADS"]

MAX_THREADS = 64   # interpreter threads a command accepts: far more (100000) crashes the runtime's thread pool

_CANDIDATES = (("ai_edge_litert.interpreter", "ai-edge-litert"), ("tflite_runtime.interpreter", "tflite-runtime"))
_found: tuple[type | None, str] | None = None


def _find() -> tuple[type | None, str]:
    global _found
    if _found is None:
        _found = (None, "none")
        for module, dist in _CANDIDATES:
            try:
                _found = (importlib.import_module(module).Interpreter, dist)
                break
            except ImportError:
                continue
    return _found


def interpreter_class():
    """The Interpreter class; raises UserError when no runtime is installed."""
    cls, _ = _find()
    if cls is None:
        raise UserError("no TFLite runtime: pip install ai-edge-litert (or tflite-runtime)")
    return cls


def runtime_name() -> str:
    return _find()[1]


def runtime_version() -> str:
    name = runtime_name()
    try:
        return f"{name} {metadata.version(name)}"
    except metadata.PackageNotFoundError:
        return name
