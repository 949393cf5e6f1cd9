"""MobileNetV2, the lightweight-CNN baseline every edgevit comparison runs against.

Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018.
Width 1.0: 3.5 M params, ~0.30 GMACs at 224x224 with 1000 classes. Built from the same ConvBN
blocks as edgevit, so the same folding, export and benchmark code runs on both.
"""

from __future__ import annotations

import torch
from torch import nn

from edgevit.layers import ConvBN, global_pool
from edgevit.registry import check_options, register_model

__all__ = ["MobileNetV2", "InvertedResidual"]

# expansion t, output channels c, repeats n, first stride s (Table 2 of the paper)
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def _divisible(v: float, divisor: int = 8) -> int:
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


class InvertedResidual(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int, expand: int, act: str):
        super().__init__()
        hidden = in_ch * expand
        self.residual = stride == 1 and in_ch == out_ch
        layers = [ConvBN(in_ch, hidden, 1, act=act)] if expand != 1 else []
        # a residual branch starts as identity, as edgevit's do: same recipe, same start (without it the
        # baseline crawled on glyphs: 5% train accuracy after 6 of 15 epochs, 27% with it)
        layers += [ConvBN(hidden, hidden, 3, stride, groups=hidden, act=act),
                   ConvBN(hidden, out_ch, 1, zero_init=self.residual)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, *, num_classes: int = 1000, width: float = 1.0, act: str = "relu6", drop_rate: float = 0.2):
        super().__init__()
        ch = _divisible(32 * width)
        last = _divisible(1280 * max(1.0, width))
        layers: list[nn.Module] = [ConvBN(3, ch, 3, 2, act=act)]
        for t, c, n, s in SETTINGS:
            out = _divisible(c * width)
            for i in range(n):
                layers.append(InvertedResidual(ch, out, s if i == 0 else 1, t, act))
                ch = out
        layers.append(ConvBN(ch, last, 1, act=act))
        self.features = nn.Sequential(*layers)
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(last, num_classes)
        self.num_attention_blocks = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(global_pool(self.features(x))))


@register_model
def mobilenetv2_100(*, num_classes: int = 1000, img_size: int = 224, **kwargs) -> MobileNetV2:
    check_options("mobilenetv2_100", kwargs, {"act", "drop_rate"})
    return MobileNetV2(num_classes=num_classes, width=1.0, **kwargs)
