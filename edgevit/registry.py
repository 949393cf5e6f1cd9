"""One model registry: `@register_model` entry functions, `create_model(name, ...)`, `list_models()`.

Tests loop over this registry, so a model is tested the day it is registered.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

from torch import nn

from contract.errors import UserError
from edgevit.sizes import check_img_size

__all__ = ["register_model", "create_model", "list_models", "check_img_size", "check_options"]

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    if fn.__name__ in _REGISTRY:
        raise RuntimeError(f"model {fn.__name__!r} registered twice")
    _REGISTRY[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    _load_model_modules()
    return sorted(_REGISTRY)


def check_options(model: str, options: dict, valid: set[str]) -> None:
    unknown = sorted(set(options) - valid)
    if unknown:
        raise UserError(f"unknown option(s) {', '.join(unknown)} for {model}; valid: {', '.join(sorted(valid))}")


def create_model(name: str, *, num_classes: int = 1000, img_size: int = 224, **kwargs) -> nn.Module:
    """Build a registered model. The returned module carries `model_spec`, everything needed to
    build it again (checkpoints store it)."""
    _load_model_modules()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"unknown model {name!r}{hint}; valid models: {', '.join(sorted(_REGISTRY))}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise UserError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    check_img_size(img_size)
    model = _REGISTRY[name](num_classes=num_classes, img_size=img_size, **kwargs)
    model.model_spec = {"name": name, "num_classes": num_classes, "img_size": img_size, **kwargs}
    return model


def _load_model_modules() -> None:
    # Importing the model files runs their @register_model decorators.
    from edgevit.models import efficientformer, mobilenet, mobilenetv2  # noqa: F401
