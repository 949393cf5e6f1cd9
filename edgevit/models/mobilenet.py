"""MobileNet v1 and v3 (Small, Large): the CNN baselines whose published on-device latencies calibrate
the ARM latency projection (XNNPACK's README times MobileNet v1 1.0, v2 1.0, v3 Large and v3 Small on
Pixel phones and Raspberry Pis; device_sim.arm.projection).

Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications",
2017 (v1 1.0: 4.2 M params, 569 M MACs at 224). Howard et al., "Searching for MobileNetV3", ICCV 2019
(Large 1.0: 5.4 M params, 219 M MACs; Small 1.0: 2.5 M params, 56 M MACs; Tables 1 and 2 below).
Built from the same ConvBN blocks as edgevit, so folding, export and benchmarks run unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from edgevit.layers import ConvBN, global_pool
from edgevit.models.mobilenetv2 import _divisible
from edgevit.registry import check_options, register_model

__all__ = ["MobileNetV1", "MobileNetV3", "SqueezeExcite"]

# v1: (output channels, stride) of each depthwise-separable block after the 3x3 stem (Table 1)
V1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1), (512, 1),
             (512, 1), (1024, 2), (1024, 1))

# v3: kernel, expansion size, output channels, squeeze-excite, activation, stride (Tables 1 and 2)
V3_LARGE = ((3, 16, 16, False, "relu", 1), (3, 64, 24, False, "relu", 2), (3, 72, 24, False, "relu", 1),
            (5, 72, 40, True, "relu", 2), (5, 120, 40, True, "relu", 1), (5, 120, 40, True, "relu", 1),
            (3, 240, 80, False, "hardswish", 2), (3, 200, 80, False, "hardswish", 1),
            (3, 184, 80, False, "hardswish", 1), (3, 184, 80, False, "hardswish", 1),
            (3, 480, 112, True, "hardswish", 1), (3, 672, 112, True, "hardswish", 1),
            (5, 672, 160, True, "hardswish", 2), (5, 960, 160, True, "hardswish", 1),
            (5, 960, 160, True, "hardswish", 1))
V3_SMALL = ((3, 16, 16, True, "relu", 2), (3, 72, 24, False, "relu", 2), (3, 88, 24, False, "relu", 1),
            (5, 96, 40, True, "hardswish", 2), (5, 240, 40, True, "hardswish", 1),
            (5, 240, 40, True, "hardswish", 1), (5, 120, 48, True, "hardswish", 1),
            (5, 144, 48, True, "hardswish", 1), (5, 288, 96, True, "hardswish", 2),
            (5, 576, 96, True, "hardswish", 1), (5, 576, 96, True, "hardswish", 1))


class MobileNetV1(nn.Module):
    def __init__(self, *, num_classes: int = 1000, act: str = "relu6", drop_rate: float = 0.2):
        super().__init__()
        layers: list[nn.Module] = [ConvBN(3, 32, 3, 2, act=act)]
        ch = 32
        for out, stride in V1_BLOCKS:
            layers += [ConvBN(ch, ch, 3, stride, groups=ch, act=act), ConvBN(ch, out, 1, act=act)]
            ch = out
        self.features = nn.Sequential(*layers)
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(ch, num_classes)
        self.num_attention_blocks = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(global_pool(self.features(x))))


class SqueezeExcite(nn.Module):
    """Channel gate: global mean -> 1x1 conv -> ReLU -> 1x1 conv -> hard sigmoid -> scale."""

    def __init__(self, channels: int):
        super().__init__()
        squeeze = _divisible(channels / 4)
        self.reduce = nn.Conv2d(channels, squeeze, 1)
        self.expand = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.expand(torch.relu(self.reduce(x.mean((2, 3), keepdim=True))))
        return x * nn.functional.hardsigmoid(gate)


class _V3Block(nn.Module):
    def __init__(self, in_ch: int, kernel: int, expand: int, out_ch: int, se: bool, act: str, stride: int):
        super().__init__()
        self.residual = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = [ConvBN(in_ch, expand, 1, act=act)] if expand != in_ch else []
        layers.append(ConvBN(expand, expand, kernel, stride, groups=expand, act=act))
        if se:
            layers.append(SqueezeExcite(expand))
        layers.append(ConvBN(expand, out_ch, 1, zero_init=self.residual))   # identity at start, as in MobileNetV2
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV3(nn.Module):
    def __init__(self, settings, *, last: int, head: int, num_classes: int = 1000, drop_rate: float = 0.2):
        super().__init__()
        layers: list[nn.Module] = [ConvBN(3, 16, 3, 2, act="hardswish")]
        ch = 16
        for kernel, expand, out, se, act, stride in settings:
            layers.append(_V3Block(ch, kernel, expand, out, se, act, stride))
            ch = out
        layers.append(ConvBN(ch, last, 1, act="hardswish"))
        self.features = nn.Sequential(*layers)
        self.pre_head = nn.Sequential(nn.Linear(last, head), nn.Hardswish(), nn.Dropout(drop_rate))
        self.head = nn.Linear(head, num_classes)
        self.num_attention_blocks = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pre_head(global_pool(self.features(x))))


@register_model
def mobilenetv1_100(*, num_classes: int = 1000, img_size: int = 224, **kwargs) -> MobileNetV1:
    check_options("mobilenetv1_100", kwargs, {"act", "drop_rate"})
    return MobileNetV1(num_classes=num_classes, **kwargs)


@register_model
def mobilenetv3_large_100(*, num_classes: int = 1000, img_size: int = 224, **kwargs) -> MobileNetV3:
    check_options("mobilenetv3_large_100", kwargs, {"drop_rate"})
    return MobileNetV3(V3_LARGE, last=960, head=1280, num_classes=num_classes, **kwargs)


@register_model
def mobilenetv3_small_100(*, num_classes: int = 1000, img_size: int = 224, **kwargs) -> MobileNetV3:
    check_options("mobilenetv3_small_100", kwargs, {"drop_rate"})
    return MobileNetV3(V3_SMALL, last=576, head=1024, num_classes=num_classes, **kwargs)
