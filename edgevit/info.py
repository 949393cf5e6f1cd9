"""Model facts for tables and budgets: parameters, MACs (torch.utils.flop_counter), attention blocks."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["ModelInfo", "count_macs", "count_params", "model_info", "info_table"]


@dataclass(frozen=True)
class ModelInfo:
    name: str
    img_size: int
    num_classes: int
    params_m: float
    gmacs: float
    attention_blocks: int

    def as_dict(self) -> dict:
        return asdict(self)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, img_size: int) -> int:
    """Multiply-accumulates of one forward pass at batch 1 (FLOPs counted by PyTorch / 2)."""
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.zeros(1, 3, img_size, img_size))
    model.train(was_training)
    return counter.get_total_flops() // 2


def model_info(name: str, *, img_size: int = 224, num_classes: int = 1000, **kwargs) -> ModelInfo:
    from edgevit.registry import create_model

    model = create_model(name, num_classes=num_classes, img_size=img_size, **kwargs)
    return ModelInfo(name, img_size, num_classes, count_params(model) / 1e6,
                     count_macs(model, img_size) / 1e9, getattr(model, "num_attention_blocks", 0))


def info_table(infos: list[ModelInfo]) -> str:
    head = f"{'model':<18} {'img':>5} {'classes':>7} {'params (M)':>10} {'GMACs':>7} {'attn blocks':>11}"
    rows = [f"{i.name:<18} {i.img_size:>5} {i.num_classes:>7} {i.params_m:>10.2f} {i.gmacs:>7.3f} "
            f"{i.attention_blocks:>11}" for i in infos]
    return "\n".join([head, "-" * len(head), *rows])
