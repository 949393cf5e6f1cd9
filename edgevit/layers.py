"""Building blocks shared by every model: Conv+BN (foldable), activations by name.

Every normalization in edgevit is a BatchNorm that directly follows a conv, so `ConvBN.fuse()`
can fold it away at deploy time (see edgevit.fuse).
"""

from __future__ import annotations

import torch
from torch import nn

from contract.errors import UserError

__all__ = ["ACTIVATIONS", "ConvBN", "make_act", "fuse_conv_bn", "global_pool"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "gelu": nn.GELU,
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "hardswish": nn.Hardswish,
}


def make_act(name: str) -> nn.Module:
    """An activation module by name; raises UserError listing the valid names."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise UserError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}") from None


@torch.no_grad()
def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new Conv2d computing bn(conv(x)) in eval mode."""
    fused = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
        padding=conv.padding, dilation=conv.dilation, groups=conv.groups, bias=True,
    )
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    return fused


class ConvBN(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> optional activation. `fuse()` folds the BN into the conv."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 1, stride: int = 1, *,
                 groups: int = 1, act: str | None = None, zero_init: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride, kernel_size // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        if zero_init:  # residual branches start as identity: trains faster and more stably
            nn.init.zeros_(self.bn.weight)
        if act is not None:
            self.act = make_act(act)

    def fuse(self) -> nn.Module:
        conv = fuse_conv_bn(self.conv, self.bn)
        return nn.Sequential(conv, self.act) if hasattr(self, "act") else conv


def global_pool(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C) mean, taken over a channels-last view. Same numbers as
    x.mean((2, 3)), but in the device's NHWC layout the permute is free, whereas a mean over NCHW
    axes makes onnx2tf put a TRANSPOSE in front of the MEAN."""
    return x.permute(0, 2, 3, 1).mean(dim=(1, 2))
