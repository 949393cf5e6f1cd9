"""What the benchmark measures: latency-realistic random-weight models (edgevit.synthetic), the compute
ceiling, and prefixes of a model for the per-segment table."""

from __future__ import annotations

import torch
from torch import nn

from edgevit.synthetic import NATURAL_MEAN, NATURAL_STD, latency_ready, natural_images

__all__ = ["natural_images", "latency_ready", "Ceiling", "Prefix", "NATURAL_MEAN", "NATURAL_STD"]


class Ceiling(nn.Module):
    """The machine's ceiling on this runtime: a compute-bound 1x1 conv, 56x56x256 -> 256 (205 MMACs).
    A 1x1 conv lifts the 3-channel image to 256 channels first (2.4 MMACs, ~1%), so the same export
    path and uint8 image input apply."""

    def __init__(self, size: int = 56, channels: int = 256):
        super().__init__()
        self.lift = nn.Conv2d(3, channels, 1)
        self.conv = nn.Conv2d(channels, channels, 1)
        self.head = nn.Linear(channels, 10)
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(torch.relu(self.lift(x))))
        return self.head(y.permute(0, 2, 3, 1).mean(dim=(1, 2)))


class Prefix(nn.Module):
    """The stem and the first `stages` stages of an edgevit model, globally pooled (a tiny output, so
    nothing but the layers themselves is timed). Consecutive prefixes, timed side by side, split the
    model's latency into segments."""

    def __init__(self, model: nn.Module, stages: int):
        super().__init__()
        self.body = nn.Sequential(model.stem, *model.stages[:stages])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean((2, 3))
