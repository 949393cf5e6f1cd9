"""export: PyTorch -> ONNX -> TFLite (fp32, fp16, full int8) with folding, calibration, fidelity
checks, sidecars and a report.

    from export import convert
    report = convert(model, torch.zeros(1, 3, 64, 64), out_dir="artifacts/x", mean=..., std=...,
                     calibration=train_images_uint8, eval_images=test_images, eval_labels=test_labels)
"""

from __future__ import annotations

import importlib

__all__ = ["convert", "compare", "FORMATS"]

_LAZY = {"convert": "export.convert", "compare": "export.compare", "FORMATS": "export.formats"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'export' has no attribute {name!r}")
