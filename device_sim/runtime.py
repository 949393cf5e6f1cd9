"""The TFLite runtime: ai-edge-litert (XNNPACK on by default), tflite_runtime as an import fallback."""

from __future__ import annotations

from importlib import metadata

__all__ = ["Interpreter", "RUNTIME", "runtime_version"]

try:
    from ai_edge_litert.interpreter import Interpreter

    RUNTIME = "ai-edge-litert"
except ImportError:  # pragma: no cover - devices with the older package only
    try:
        from tflite_runtime.interpreter import Interpreter

        RUNTIME = "tflite-runtime"
    except ImportError:
        Interpreter = None
        RUNTIME = "none"


def runtime_version() -> str:
    try:
        return f"{RUNTIME} {metadata.version(RUNTIME)}"
    except metadata.PackageNotFoundError:
        return RUNTIME
