"""edgevit: EfficientFormer-style vision transformers designed for the device.

Follows the recipe of
  Li et al., "EfficientFormer: Vision Transformers at MobileNet Speed", NeurIPS 2022, and
  Li et al., "Rethinking Vision Transformers for MobileNet Size and Speed" (EfficientFormerV2), ICCV 2023:
a conv stem, 4D stages of blocks (a depthwise 3x3 local token mixer, then a pointwise FFN), stride-2
Conv-BN downsampling, and multi-head self-attention (in place of the local mixer) with a learned
relative-position bias only in the last, low-resolution stage. Every normalization is a BatchNorm
directly after a conv (or, for the final norm, foldable into the classifier), so
`edgevit.fuse.fuse_for_deploy` removes all of them.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from contract.errors import UserError
from edgevit.layers import ACTIVATIONS, ConvBN, global_pool
from edgevit.registry import check_options, register_model

__all__ = ["EdgeViT", "EdgeViTConfig", "Attention", "FFN", "LocalMixer", "Block", "ATTENTION_IMPLS", "SIZES", "Size",
           "make_stem", "make_downsample"]

ATTENTION_IMPLS = ("bounded", "blockdiag", "heads")


class Size(NamedTuple):
    """A registered family member (`edgevit_<name>`): its stage layout and where that layout came from."""
    widths: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    num_vit: tuple[int, int, int, int]     # attention blocks at the end of each stage
    num_heads: int
    mlp_ratio: int = 4
    origin: str = ""


HAND_TUNED = ("hand-tuned on the x86 host: shallow early stages and wide late ones (in int8 every conv pays a "
              "fixed cost per output pixel, so work at 1/4 resolution is the least efficient; BENCHMARKS.md)")

SIZES = {
    "xxs": Size((24, 48, 96, 160), (1, 2, 4, 3), (0, 0, 0, 2), 4, origin=HAND_TUNED),
    "xs": Size((32, 64, 128, 192), (1, 2, 6, 4), (0, 0, 0, 2), 4, origin=HAND_TUNED),
    "s": Size((32, 64, 160, 256), (1, 2, 8, 4), (0, 0, 0, 2), 5, origin=HAND_TUNED),
    # the wearables' model: found by `edgevit search` on the latency table of the A53 and A55 (BENCHMARKS.md, Search)
    "wear": Size((24, 32, 160, 160), (2, 2, 3, 5), (0, 0, 0, 3), 4, mlp_ratio=3,
                 origin="edgevit search 2026-11-30, trial 23 (w24-32-160-160_d2-2-3-5_a0-3_m3_h4): the most accurate "
                        "of the trained designs (glyphs proxy, validation fonts) within 0.8x MobileNetV2's projected "
                        "int8 latency on the smartwatch's Cortex-A53 (0.72x) and the glasses' Cortex-A55 (0.61x) at "
                        "224x224"),
}
# At most 5 heads: the block-diagonal operands concatenate one copy per head, and XNNPACK takes a
# CONCATENATION of at most 5 inputs (6 heads left four concats outside the delegate in int8).


class LocalMixer(nn.Module):
    """Depthwise 3x3 Conv-BN on the block's width: the 4D token mixer (ConvNeXt / EfficientFormer
    style). It sits on `dim`, not on the FFN's expanded width: in per-channel int8 every output
    channel carries ~28 bytes of scales, zero points and bias, as much as a 3x3 depthwise filter
    itself, so a depthwise conv on 4x the channels would barely shrink in int8."""

    def __init__(self, dim: int):
        super().__init__()
        self.dw = ConvBN(dim, dim, 3, groups=dim, zero_init=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dw(x)


class FFN(nn.Module):
    """Pointwise expand -> activation -> pointwise project, Conv-BN each."""

    def __init__(self, dim: int, hidden: int, act: str):
        super().__init__()
        self.fc1 = ConvBN(dim, hidden, 1, act=act)
        self.fc2 = ConvBN(hidden, dim, 1, zero_init=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x))


class Attention(nn.Module):
    """Multi-head self-attention over an HxW grid with a learned relative-position bias, shaped for
    the int8 runtime. Three formulations of the same layer (`impl`), measured in BENCHMARKS.md:

    - "bounded" (default): tokens are taken channels-last ((B, H, W, C) -> (B, N, C)), free in the
      device's NHWC layout; all heads run in two plain matmuls against block-diagonal copies of k^T
      and v (head i's queries only meet head i's keys, the other blocks are zero), so the exported
      graph needs ONE transpose per block. Keys and values pass through tanh as the last op before
      each matmul: tanh has a fixed, symmetric int8 scale (zero point 0), which is what XNNPACK needs
      to run an int8 BATCH_MATMUL whose second operand is an activation. Without it both matmuls
      fall back to TFLite's reference-speed int8 kernel (about 9x slower than XNNPACK here).
    - "blockdiag": the same without tanh (the matmuls leave XNNPACK in int8).
    - "heads": the textbook layout, heads moved into a batch dimension (four transposes per block).

    The bias table holds one value per head and (|dy|, |dx|) offset; `fuse()` expands it once into
    a constant, folds the 1/sqrt(d) scale into the query channels of the qkv conv, and splits that conv
    into three (q, k, v: the same weights, the same numbers). One conv's output has ONE int8 scale, and
    slicing q, k and v out of it keeps that scale: the three would share the widest one's range (on the
    glyph-trained edgevit_wear the slices measured 21-24 dB local SQNR, a quarter of the int8 error).
    Three convs give each its own.
    """

    def __init__(self, dim: int, resolution: int, *, num_heads: int, key_dim: int, attn_ratio: int,
                 impl: str = "bounded"):
        super().__init__()
        self.num_heads, self.key_dim, self.impl = num_heads, key_dim, impl
        self.val_dim = attn_ratio * key_dim
        self.resolution = resolution
        self.scale = key_dim ** -0.5
        h, n = num_heads, resolution * resolution
        self.qkv = ConvBN(dim, h * (2 * key_dim + self.val_dim))   # channels: [q heads | k heads | v heads]
        self.proj = ConvBN(h * self.val_dim, dim, zero_init=True)

        points = list(itertools.product(range(resolution), range(resolution)))
        idx = [abs(p[0] - q[0]) * resolution + abs(p[1] - q[1]) for p in points for q in points]
        self.attention_biases = nn.Parameter(torch.zeros(h, n))
        self.register_buffer("bias_idx", torch.tensor(idx, dtype=torch.long).view(n, n), persistent=False)
        self.register_buffer("cached_bias", None)  # set by fuse()
        self.register_buffer("k_mask", torch.block_diag(*[torch.ones(key_dim, n)] * h), persistent=False)
        self.register_buffer("v_mask", torch.block_diag(*[torch.ones(n, self.val_dim)] * h), persistent=False)

    def bias(self) -> torch.Tensor:
        """"heads": (heads, N, N). Otherwise (N, heads * N): row = query, column block i = head i."""
        if self.cached_bias is not None:
            return self.cached_bias
        table = self.attention_biases[:, self.bias_idx]
        if self.impl == "heads":
            return table
        n = self.resolution * self.resolution
        return table.permute(1, 0, 2).reshape(n, self.num_heads * n)

    @torch.no_grad()
    def fuse(self) -> Attention:
        if self.qkv is None:   # fused already
            return self
        qkv = self.qkv if isinstance(self.qkv, nn.Conv2d) else self.qkv.fuse()
        q_channels = self.num_heads * self.key_dim
        qkv.weight[:q_channels] *= self.scale
        qkv.bias[:q_channels] *= self.scale
        self.qkv, self.scale = None, 1.0
        parts = (q_channels, q_channels, self.num_heads * self.val_dim)
        for name, w, b in zip(("q", "k", "v"), qkv.weight.split(parts), qkv.bias.split(parts)):
            conv = nn.Conv2d(qkv.in_channels, w.shape[0], 1)
            conv.weight.copy_(w)
            conv.bias.copy_(b)
            setattr(self, name, conv)
        self.cached_bias = self.bias().clone()
        del self.attention_biases
        return self

    def _scaled(self, scores: torch.Tensor) -> torch.Tensor:
        return scores if self.scale == 1.0 else scores * self.scale   # 1.0 once fused: no op exported

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values as tokens, (B, N, C) in NHWC order (a free permute on the device)."""
        b = x.shape[0]
        if self.qkv is None:   # fused: three convs, three int8 scales
            return tuple(conv(x).permute(0, 2, 3, 1).reshape(b, -1, conv.out_channels)
                         for conv in (self.q, self.k, self.v))
        tokens = self.qkv(x).permute(0, 2, 3, 1).reshape(b, x.shape[2] * x.shape[3], -1)
        q_channels = self.num_heads * self.key_dim
        return tokens.split([q_channels, q_channels, self.num_heads * self.val_dim], dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, height, width = x.shape
        h, n, kd, dv = self.num_heads, height * width, self.key_dim, self.val_dim
        q, k, v = self._qkv(x)                                                  # (B, N, C) each
        if self.impl == "heads":
            q = q.reshape(b, n, h, kd).transpose(1, 2)                          # (B, h, N, kd)
            k = k.reshape(b, n, h, kd).permute(0, 2, 3, 1)                      # (B, h, kd, N)
            v = v.reshape(b, n, h, dv).transpose(1, 2)                          # (B, h, N, dv)
            attn = (self._scaled(q @ k) + self.bias()).softmax(dim=-1)
            out = (attn @ v).transpose(1, 2)                                    # (B, N, h, dv)
        else:
            k_blocks = torch.cat([k.transpose(1, 2)] * h, dim=2) * self.k_mask  # (B, h*kd, h*N)
            v_blocks = torch.cat([v] * h, dim=1) * self.v_mask                  # (B, h*N, h*dv)
            if self.impl == "bounded":
                k_blocks, v_blocks = torch.tanh(k_blocks), torch.tanh(v_blocks)
            attn = self._scaled(q @ k_blocks) + self.bias()                     # (B, N, h*N)
            attn = attn.reshape(b, n, h, n).softmax(dim=-1).reshape(b, n, h * n)
            out = attn @ v_blocks                                               # (B, N, h*dv)
        out = out.reshape(b, height, width, h * dv).permute(0, 3, 1, 2)
        return self.proj(out)


class Block(nn.Module):
    """Residual token mixer (depthwise local mixer, or self-attention in the low-resolution stage),
    then a residual FFN."""

    def __init__(self, dim: int, cfg: EdgeViTConfig, resolution: int | None):
        super().__init__()
        if resolution is not None:
            self.mixer = Attention(dim, resolution, num_heads=cfg.num_heads, key_dim=cfg.key_dim,
                                   attn_ratio=cfg.attn_ratio, impl=cfg.attention)
        else:
            self.mixer = LocalMixer(dim)
        self.ffn = FFN(dim, dim * cfg.mlp_ratio, cfg.act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.mixer(x)
        return x + self.ffn(x)


def make_stem(width: int, act: str) -> nn.Sequential:
    """Two stride-2 3x3 Conv-BN-act: the image to 1/4 resolution at `width` channels."""
    return nn.Sequential(ConvBN(3, width // 2, 3, 2, act=act), ConvBN(width // 2, width, 3, 2, act=act))


def make_downsample(in_width: int, width: int) -> ConvBN:
    """Stride-2 3x3 Conv-BN between stages."""
    return ConvBN(in_width, width, 3, 2)


@dataclass(frozen=True)
class EdgeViTConfig:
    widths: tuple[int, ...] = (32, 64, 128, 192)  # channels of the 4 stages (strides 4, 8, 16, 32)
    depths: tuple[int, ...] = (1, 2, 6, 4)        # blocks per stage
    num_vit: tuple[int, ...] = (0, 0, 0, 2)       # attention blocks at the end of each stage
    mlp_ratio: int = 4                            # FFN hidden = mlp_ratio * width
    num_heads: int = 4
    key_dim: int = 16                             # per-head query/key channels
    attn_ratio: int = 2                           # per-head value channels = attn_ratio * key_dim
    act: str = "relu"                             # see ACTIVATIONS; chosen by measurement (BENCHMARKS.md)
    attention: str = "bounded"                    # see ATTENTION_IMPLS; chosen by measurement
    drop_rate: float = 0.0                        # dropout before the classifier

    def __post_init__(self):
        if not (len(self.widths) == len(self.depths) == len(self.num_vit) == 4):
            raise UserError("widths, depths and num_vit need one entry per stage (4 each)")
        if any(v > d for v, d in zip(self.num_vit, self.depths)):
            raise UserError(f"num_vit {self.num_vit} exceeds depths {self.depths}")
        if any(self.num_vit[:2]):
            raise UserError("attention is only allowed in the last two (low-resolution) stages")
        if self.attention not in ATTENTION_IMPLS:
            raise UserError(f"unknown attention {self.attention!r}; choose one of {', '.join(ATTENTION_IMPLS)}")
        if self.act not in ACTIVATIONS:
            raise UserError(f"unknown activation {self.act!r}; choose one of {', '.join(ACTIVATIONS)}")
        if min(self.num_heads, self.key_dim, self.attn_ratio, self.mlp_ratio) < 1:
            raise UserError("num_heads, key_dim, attn_ratio and mlp_ratio must be >= 1")
        if not 0.0 <= self.drop_rate < 1.0:
            raise UserError(f"drop_rate must be in [0, 1), got {self.drop_rate}")


class EdgeViT(nn.Module):
    def __init__(self, cfg: EdgeViTConfig, *, num_classes: int = 1000, img_size: int = 224):
        super().__init__()
        self.cfg = cfg
        w = cfg.widths
        self.stem = make_stem(w[0], cfg.act)
        stages = []
        for i, (width, depth, n_vit) in enumerate(zip(w, cfg.depths, cfg.num_vit)):
            resolution = img_size // (4 * 2 ** i)
            layers = [make_downsample(w[i - 1], width)] if i else []
            layers += [Block(width, cfg, resolution if j >= depth - n_vit else None) for j in range(depth)]
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.norm = nn.BatchNorm2d(w[-1])  # folds into `head` (pooling is linear)
        self.drop = nn.Dropout(cfg.drop_rate)
        self.head = nn.Linear(w[-1], num_classes)
        self.num_attention_blocks = sum(cfg.num_vit)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.stages(self.stem(x)))

    @torch.no_grad()
    def fuse(self) -> EdgeViT:
        """Fold the final BatchNorm into the classifier: pooling is linear, so
        head(mean(bn(x))) = (W*s) mean(x) + (b + W t) with s = gamma/sqrt(var+eps), t = beta - mu*s."""
        if isinstance(self.norm, nn.BatchNorm2d):
            s = self.norm.weight / torch.sqrt(self.norm.running_var + self.norm.eps)
            t = self.norm.bias - self.norm.running_mean * s
            self.head.bias.add_(self.head.weight @ t)
            self.head.weight.mul_(s)
            self.norm = nn.Identity()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(global_pool(self.forward_features(x))))


def _build(size: str, num_classes: int, img_size: int, **kwargs) -> EdgeViT:
    size_ = SIZES[size]
    base = EdgeViTConfig(widths=size_.widths, depths=size_.depths, num_vit=size_.num_vit, num_heads=size_.num_heads,
                         mlp_ratio=size_.mlp_ratio)
    check_options(f"edgevit_{size}", kwargs, {f.name for f in dataclasses.fields(EdgeViTConfig)})
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    return EdgeViT(dataclasses.replace(base, **kwargs), num_classes=num_classes, img_size=img_size)


@register_model
def edgevit_xxs(*, num_classes: int = 1000, img_size: int = 224, **kwargs) -> EdgeViT:
    return _build("xxs", num_classes, img_size, **kwargs)


@register_model
def edgevit_xs(*, num_classes: int = 1000, img_size: int = 224, **kwargs) -> EdgeViT:
    """EfficientFormerV2-S0 class: <= 3.6 M params, <= 0.45 GMACs at 224x224."""
    return _build("xs", num_classes, img_size, **kwargs)


@register_model
def edgevit_wear(*, num_classes: int = 1000, img_size: int = 224, **kwargs) -> EdgeViT:
    """Searched on the wearables' cores (SIZES["wear"].origin): narrow early stages, a deep 7x7 stage with three
    attention blocks; 1.9 M params at 224x224."""
    return _build("wear", num_classes, img_size, **kwargs)


@register_model
def edgevit_s(*, num_classes: int = 1000, img_size: int = 224, **kwargs) -> EdgeViT:
    """EfficientFormerV2-S1 class: <= 6.5 M params, <= 0.70 GMACs at 224x224."""
    return _build("s", num_classes, img_size, **kwargs)
