"""Latency-realistic random weights and natural-looking images (nothing is downloaded): what every
latency measurement of an untrained model uses (the benchmarks, the search's latency table).

Random weights are fine for latency, but a fresh init is not: zero-initialised residual BatchNorms
would fold to all-zero convs, and BN statistics of a fresh init do not match real activations. So
every BN gets random affine parameters and its statistics re-estimated on natural-looking images
(1/f-spectrum noise, the power spectrum of natural scenes), and attention biases are random.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["natural_images", "latency_ready", "NATURAL_MEAN", "NATURAL_STD"]

NATURAL_MEAN = (0.485, 0.456, 0.406)   # the usual ImageNet normalization, per channel
NATURAL_STD = (0.229, 0.224, 0.225)


def natural_images(n: int, size: int, *, seed: int = 0) -> np.ndarray:
    """n uint8 RGB images (n, size, size, 3) with a 1/f amplitude spectrum and random colour casts."""
    rng = np.random.default_rng(seed)
    fy, fx = np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij")
    amplitude = 1.0 / np.maximum(np.hypot(fy, fx), 1.0 / size)
    images = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        phase = np.exp(2j * np.pi * rng.random((3, size, size)))
        planes = np.real(np.fft.ifft2(amplitude * phase))
        planes = (planes - planes.mean(axis=(1, 2), keepdims=True)) / planes.std(axis=(1, 2), keepdims=True)
        mixed = np.einsum("cij,cd->ijd", planes, 0.5 + 0.5 * rng.random((3, 3)))   # correlated channels
        mixed = mixed / mixed.std() * 45.0 + 120.0 + rng.normal(0, 20, 3)
        images[i] = np.clip(mixed, 0, 255).astype(np.uint8)
    return images


@torch.no_grad()
def latency_ready(model: nn.Module, images: np.ndarray, *, mean=NATURAL_MEAN, std=NATURAL_STD,
                  seed: int = 0) -> nn.Module:
    """Random BN affine parameters and attention biases, then BN statistics re-estimated on `images`."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.weight.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.5)
            m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.reset_running_stats()
            m.momentum = None   # cumulative average over all batches below
        if hasattr(m, "attention_biases"):
            m.attention_biases.copy_(torch.randn(m.attention_biases.shape, generator=g) * 0.5)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    model.train()
    for i in range(0, len(x), 8):
        model(x[i:i + 8])
    return model.eval()
