"""export: PyTorch -> ONNX -> TFLite (fp32, fp16, full int8, and any registered format) with folding,
calibration, fidelity checks, model cards and a report.

    import export
    report = export.convert(model, torch.zeros(1, 3, 64, 64), out_dir="artifacts/x", mean=..., std=...,
                            calibration=train_images_uint8, eval_images=test_images, eval_labels=test_labels)

`convert` lives in `export.converter`; no submodule shares its name, so `export.convert` stays the
function however often it is called and whichever submodules were imported in between.
"""

from __future__ import annotations

import importlib

__all__ = ["convert", "compare", "FORMATS", "register_format", "Format", "Target"]

_LAZY = {"convert": "export.converter", "compare": "export.metrics", "FORMATS": "export.formats",
         "register_format": "export.formats", "Format": "export.formats", "Target": "export.formats"}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value   # cache: later look-ups do not come here again
        return value
    raise AttributeError(f"module 'export' has no attribute {name!r}")
