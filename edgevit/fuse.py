"""Deploy-time folding: BatchNorm into convs/linears, attention constants, input normalization.

`fuse_for_deploy(model)` walks the module tree top-down and replaces every module that has a
`fuse()` method by what it returns, on a copy; a module without one but with an in-place
`switch_to_deploy()` or `reparameterize()` (RepVGG, MobileOne) has it called. A module that fuses
itself owns its subtree (timm's `reparameterize_model` convention: RepViT's blocks call their children's
`fuse()`); the walk then continues into what it returned, so children it left alone are fused too.

`fold_input_normalization(model, mean, std)` returns a module that takes raw pixels 0..255 and
equals `model((x / 255 - mean) / std)`. Folding all of it into the stem conv is NOT exact, because
the conv's zero padding would then stand for a raw pixel of 0 instead of the mean (at the border
logits moved by 2.4, docs/TOOLCHAIN.md). Exact form: keep one subtraction of 255*mean, fold
only the scale 1/(255*std) into the first conv; its zero padding then still means "the mean".
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from contract.errors import UserError

__all__ = ["fuse_for_deploy", "fold_input_normalization", "RawPixelInput"]


def _no_arg_method(module: nn.Module, name: str):
    import inspect

    method = getattr(module, name, None)
    if not callable(method):
        return None
    try:
        required = [p for p in inspect.signature(method).parameters.values()
                    if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return None
    return None if required else method   # e.g. a VAE's reparameterize(mu, logvar) is not a deploy hook


def _fuse_tree(module: nn.Module) -> nn.Module:
    fuse = _no_arg_method(module, "fuse")
    if fuse is not None:
        module = fuse()
    else:
        for hook in ("switch_to_deploy", "reparameterize"):
            if (method := _no_arg_method(module, hook)) is not None:
                method()
                break
    for name, child in list(module.named_children()):
        module._modules[name] = _fuse_tree(child)
    return module


@torch.no_grad()
def fuse_for_deploy(model: nn.Module, *, strict: bool = True) -> nn.Module:
    """A folded eval-mode copy of `model`: no BatchNorm left, attention constants precomputed.

    strict=False is for foreign models (any nn.Module): what has a `fuse()` is folded, other
    BatchNorms stay (ONNX export still folds a BN that directly follows a conv)."""
    fused = _fuse_tree(copy.deepcopy(model).eval())
    left = [n for n, m in fused.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if left and strict:
        raise ValueError(f"BatchNorm that no conv or linear can absorb: {', '.join(left[:5])}")
    return fused.eval()


class RawPixelInput(nn.Module):
    """Takes NCHW float pixels in 0..255; subtracts 255*mean; optionally scales (when the scale
    could not be folded into the first conv)."""

    def __init__(self, model: nn.Module, shift: torch.Tensor, scale: torch.Tensor | None):
        super().__init__()
        self.model = model
        self.register_buffer("shift", shift.reshape(1, -1, 1, 1))
        self.register_buffer("scale", None if scale is None else scale.reshape(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Subtract in a channels-last row view, (B, H, W*C) minus one (W*C) row: the same numbers as
        # x - shift, but on the device (NHWC) the views are free and the broadcast runs along a long
        # contiguous row. Broadcasting a 3-value vector over every pixel made this int8 SUB about 6x slower
        # at 224x224 on XNNPACK (measured on an x86 host when this was introduced, commit 70f6f18).
        b, c, h, w = x.shape
        row = self.shift.reshape(1, 1, c).repeat(1, 1, w)
        x = (x.permute(0, 2, 3, 1).reshape(b, h, w * c) - row).reshape(b, h, w, c).permute(0, 3, 1, 2)
        if self.scale is not None:
            x = x * self.scale
        return self.model(x)


def _first_conv(model: nn.Module) -> nn.Conv2d | None:
    return next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)


@torch.no_grad()
def fold_input_normalization(model: nn.Module, mean: Sequence[float], std: Sequence[float], *,
                             img_size: int | None = None) -> nn.Module:
    """A copy of `model` that takes raw 0..255 pixels (NCHW float) and matches
    `model((x / 255 - mean) / std)`, borders included.

    The scale is folded into the first conv when that conv is verifiably the first op applied to
    the image (checked numerically on an input whose border is far from the mean); otherwise it
    stays as one explicit multiply, which is still exact.
    """
    mean_t = torch.as_tensor(mean, dtype=torch.float32)
    std_t = torch.as_tensor(std, dtype=torch.float32)
    if mean_t.shape != (3,) or std_t.shape != (3,) or bool((std_t <= 0).any()):
        raise UserError(f"mean and std need 3 values each and std > 0, got mean={list(mean)} std={list(std)}")
    model = copy.deepcopy(model).eval()
    scale = 1.0 / (255.0 * std_t)
    shift = 255.0 * mean_t

    folded = copy.deepcopy(model)
    conv = _first_conv(folded)
    if conv is not None and conv.in_channels == 3 and conv.groups == 1 and conv.padding_mode == "zeros":
        conv.weight.mul_(scale.reshape(1, 3, 1, 1))
        candidate = RawPixelInput(folded, shift, None)
        size = img_size or getattr(model, "model_spec", {}).get("img_size", 64)
        x = _border_probe(size)
        reference = model((x / 255.0 - mean_t.reshape(1, 3, 1, 1)) / std_t.reshape(1, 3, 1, 1))
        if torch.allclose(candidate(x), reference, atol=1e-4, rtol=1e-4):
            return candidate
    return RawPixelInput(model, shift, scale)


def _border_probe(size: int) -> torch.Tensor:
    """Random pixels with a saturated (0 or 255) frame, far from any plausible mean."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (2, 3, size, size), generator=g).float()
    x[0, :, :4, :] = 255.0
    x[0, :, -4:, :] = 0.0
    x[1, :, :, :4] = 0.0
    x[1, :, :, -4:] = 255.0
    return x
