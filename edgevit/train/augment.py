"""Batch augmentation on uint8 pixels, done in torch on the whole batch (no DataLoader workers).

Geometric: small random affine (rotation, scale, translation) with border replication, optional
horizontal flip. Photometric: slight blur, brightness/contrast jitter and sensor noise, so a model
also copes with the device camera's defocus and exposure changes. Output stays in raw 0..255 pixel units.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["augment_batch"]


def augment_batch(x: torch.Tensor, g: torch.Generator, *, hflip: bool, max_rot_deg: float = 12.0,
                  scale: tuple[float, float] = (0.85, 1.1), max_shift: float = 0.1) -> torch.Tensor:
    """x: (B, 3, H, W) float in 0..255. Returns an augmented copy, same units."""
    b = x.shape[0]

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(b, generator=g)

    angle = uniform(-max_rot_deg, max_rot_deg) * math.pi / 180
    s = uniform(*scale)
    flip = torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0) if hflip else torch.ones(b)
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.stack([
        torch.stack([cos * flip, -sin, uniform(-max_shift, max_shift) * 2], dim=1),
        torch.stack([sin * flip, cos, uniform(-max_shift, max_shift) * 2], dim=1),
    ], dim=1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)  # defocus / motion
    x = torch.where((torch.rand(b, generator=g) < 0.3).view(b, 1, 1, 1), blurred, x)
    # exposure: auto-exposure on a head-mounted camera swings paper white down to mid grey
    contrast = uniform(0.7, 1.25).view(b, 1, 1, 1)
    brightness = uniform(-60.0, 30.0).view(b, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean + brightness
    x = x + torch.randn(x.shape, generator=g) * uniform(0.0, 6.0).view(b, 1, 1, 1)
    return x.clamp_(0.0, 255.0)
