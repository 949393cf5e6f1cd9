"""edgevit: EfficientFormer-style vision transformers for wearables (PyTorch side).

    import edgevit
    model = edgevit.create_model("edgevit_xs", num_classes=10, img_size=64)
    deploy = edgevit.fuse_for_deploy(model)

Attributes are imported lazily, so `import edgevit` (and `edgevit.data`) does not pull in torch.
"""

from __future__ import annotations

import importlib

from contract import __version__  # noqa: F401 - the project's one version

__all__ = ["create_model", "list_models", "fuse_for_deploy", "fold_input_normalization"]

_LAZY = {
    "create_model": "edgevit.registry", "list_models": "edgevit.registry",
    "fuse_for_deploy": "edgevit.fuse", "fold_input_normalization": "edgevit.fuse",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgevit' has no attribute {name!r}")
