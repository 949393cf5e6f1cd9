"""Model helpers for tests: random BatchNorm statistics so folding is really exercised."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def randomize_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics/affine and attention biases: a zero-initialised residual BN would
    otherwise hide a wrong fold."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) * 2 - 1)
            m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            m.weight.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.copy_(torch.rand(n, generator=g) - 0.5)
        if hasattr(m, "attention_biases"):
            m.attention_biases.copy_(torch.randn(m.attention_biases.shape, generator=g))
    return model.eval()
