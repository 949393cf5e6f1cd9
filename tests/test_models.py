"""Registry-driven model tests: every registered model is covered the day it is registered."""

from __future__ import annotations

import pytest
import torch
from helpers_models import randomize_norms
from torch import nn

import edgevit
from edgevit.info import count_macs, count_params

MODELS = edgevit.list_models()
MEAN, STD = (0.82, 0.5, 0.3), (0.31, 0.2, 0.25)


def test_registry_has_the_family_and_the_baseline():
    assert {"edgevit_xxs", "edgevit_xs", "edgevit_s", "mobilenetv2_100"} <= set(MODELS)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("img_size", [64, 96, 160])
def test_forward_shape_and_finite(name, img_size):
    torch.manual_seed(0)
    model = edgevit.create_model(name, num_classes=7, img_size=img_size).eval()
    out = model(torch.randn(2, 3, img_size, img_size))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", MODELS)
def test_fused_matches_unfused_and_has_no_batchnorm(name):
    torch.manual_seed(1)
    model = randomize_norms(edgevit.create_model(name, num_classes=10, img_size=64))
    fused = edgevit.fuse_for_deploy(model)
    assert not [m for m in fused.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules()), "fuse_for_deploy must not touch the original"
    x = torch.randn(4, 3, 64, 64) * 2
    with torch.no_grad():
        ref, out = model(x), fused(x)
    assert ref.abs().max() > 1e-2, "degenerate reference: the test could not detect a wrong fold"
    assert (ref - out).abs().max().item() <= 1e-4


@pytest.mark.parametrize("name", [n for n in MODELS if n.startswith("edgevit")])
def test_fused_attention_has_constant_bias_and_no_scale(name):
    fused = edgevit.fuse_for_deploy(edgevit.create_model(name, num_classes=10, img_size=64))
    attns = [m for m in fused.modules() if type(m).__name__ == "Attention"]
    assert attns, "edgevit models have attention blocks"
    for a in attns:
        n = a.resolution ** 2
        assert a.cached_bias is not None and tuple(a.cached_bias.shape) == (n, a.num_heads * n)
        assert a.scale == 1.0 and not hasattr(a, "attention_biases")


@pytest.mark.parametrize("impl", ["bounded", "blockdiag", "heads"])
def test_attention_formulations_equal_textbook_multihead(impl):
    """Every formulation computes softmax(q_i k_i^T * s + B_i) v_i per head (with tanh on k and v
    for "bounded"), fused or not."""
    torch.manual_seed(4)
    model = randomize_norms(edgevit.create_model("edgevit_xs", num_classes=10, img_size=128, attention=impl))
    attn = next(m for m in model.modules() if type(m).__name__ == "Attention")
    assert attn.impl == impl
    x = torch.randn(2, attn.qkv.conv.in_channels, attn.resolution, attn.resolution)
    b, _, hh, ww = x.shape
    h, kd, dv, n = attn.num_heads, attn.key_dim, attn.val_dim, hh * ww
    squash = torch.tanh if impl == "bounded" else (lambda t: t)
    with torch.no_grad():
        t = attn.qkv(x).reshape(b, -1, n)
        q = t[:, :h * kd].reshape(b, h, kd, n).transpose(-2, -1)
        k = squash(t[:, h * kd:2 * h * kd].reshape(b, h, kd, n))
        v = squash(t[:, 2 * h * kd:].reshape(b, h, dv, n).transpose(-2, -1))
        bias = attn.attention_biases[:, attn.bias_idx]                       # (h, N, N)
        ref = ((q @ k) * kd ** -0.5 + bias).softmax(-1) @ v                 # (b, h, N, dv)
        ref = attn.proj(ref.transpose(-2, -1).reshape(b, h * dv, hh, ww))
        assert ref.abs().max() > 1e-2
        assert (attn(x) - ref).abs().max().item() <= 1e-5
        fused = edgevit.fuse_for_deploy(attn)
        assert (fused(x) - ref).abs().max().item() <= 1e-4


def _border_heavy_pixels(size: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 256, (3, 3, size, size), generator=g).float()
    x[0] = 0.0                      # black everywhere, borders included: far below the mean
    x[1, :, :6, :] = 255.0          # saturated top and left edges
    x[1, :, :, :6] = 255.0
    x[2, :, -1, :] = 0.0            # one-pixel dark frame at the bottom/right
    x[2, :, :, -1] = 0.0
    return x


@pytest.mark.parametrize("name", MODELS)
def test_input_normalization_fold_is_exact_at_borders(name):
    model = edgevit.fuse_for_deploy(randomize_norms(edgevit.create_model(name, num_classes=10, img_size=64), seed=2))
    deploy = edgevit.fold_input_normalization(model, MEAN, STD)
    x = _border_heavy_pixels(64)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        ref = model((x / 255 - mean) / std)
        out = deploy(x)
    assert (ref - out).abs().max().item() <= 1e-4
    assert deploy.scale is None, "the scale should be folded into the stem conv"


def test_naive_full_fold_would_be_inexact():
    """Guards the reason for the subtraction: folding mean into the conv bias breaks the borders."""
    model = edgevit.fuse_for_deploy(randomize_norms(edgevit.create_model("edgevit_xxs", num_classes=10, img_size=64)))
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    naive = edgevit.fold_input_normalization(model, MEAN, STD)
    conv = naive.model.stem[0][0]
    with torch.no_grad():
        # move the subtraction into the conv bias: exact in the interior, wrong where padding enters
        conv.bias.sub_((conv.weight * naive.shift).sum(dim=(1, 2, 3)))
        naive.shift.zero_()
        x = _border_heavy_pixels(64)
        diff = (naive(x) - model((x / 255 - mean) / std)).abs().max().item()
    assert diff > 10 * 1e-4  # ten times the tolerance the exact fold meets


@pytest.mark.parametrize("name,max_params_m,max_gmacs", [
    ("edgevit_xs", 3.6, 0.45), ("edgevit_s", 6.5, 0.70), ("mobilenetv2_100", 3.6, 0.32),
])
def test_size_class_at_224(name, max_params_m, max_gmacs):
    model = edgevit.create_model(name, num_classes=1000, img_size=224)
    params_m, gmacs = count_params(model) / 1e6, count_macs(model, 224) / 1e9
    assert params_m <= max_params_m and gmacs <= max_gmacs, (params_m, gmacs)
    assert gmacs > 0.1  # a real network, not an empty one


def test_family_is_ordered_by_cost():
    costs = [count_macs(edgevit.create_model(n, img_size=224), 224) for n in ("edgevit_xxs", "edgevit_xs", "edgevit_s")]
    assert costs == sorted(costs) and len(set(costs)) == 3


@pytest.mark.parametrize("name,params_m,mmacs", [
    ("mobilenetv2_100", 3.50, 300), ("mobilenetv1_100", 4.23, 569),   # the papers' Table 3 / Table 8
    # torchvision's counts of the MobileNetV3 paper's nets
    ("mobilenetv3_large_100", 5.48, 217), ("mobilenetv3_small_100", 2.54, 57),
])
def test_mobilenets_match_the_papers(name, params_m, mmacs):
    model = edgevit.create_model(name)
    assert abs(count_params(model) / 1e6 - params_m) < 0.02
    assert abs(count_macs(model, 224) / 1e6 - mmacs) / mmacs < 0.02


@pytest.mark.parametrize("name", ["mobilenetv2_100", "mobilenetv3_small_100", "mobilenetv3_large_100"])
def test_mobilenet_residual_branches_start_as_identity(name):
    """The identical recipe needs the identical start: like edgevit's blocks, every residual branch of a baseline
    ends in a zero-initialized BatchNorm, so the block is the identity until it learns; other blocks are not."""
    model = edgevit.create_model(name, num_classes=62)
    blocks = [m for m in model.modules() if hasattr(m, "residual")]
    assert any(b.residual for b in blocks) and not all(b.residual for b in blocks)
    for b in blocks:
        assert bool(torch.all(b.conv[-1].bn.weight == 0)) == b.residual, b
        if b.residual:
            x = torch.randn(2, b.conv[0].conv.in_channels, 8, 8)
            assert torch.equal(b.eval()(x), x)


@pytest.mark.parametrize("bad", [0, 63, 70, 32, 100])
def test_bad_img_size(bad):
    with pytest.raises(ValueError, match="multiple of 32"):
        edgevit.create_model("edgevit_xs", img_size=bad)


def test_unknown_model_lists_valid_ones():
    with pytest.raises(ValueError) as e:
        edgevit.create_model("edgevit_xl")
    assert "edgevit_xs" in str(e.value) and "mobilenetv2_100" in str(e.value)


@pytest.mark.parametrize("act", ["gelu", "relu", "hardswish"])
def test_activation_is_a_constructor_choice(act):
    model = edgevit.create_model("edgevit_xxs", num_classes=10, img_size=64, act=act)
    kinds = {type(m).__name__.lower() for m in model.modules()}
    assert act in kinds and not ({"gelu", "relu", "hardswish"} - {act}) & kinds


def test_unknown_option_is_rejected():
    with pytest.raises(ValueError, match="unknown option"):
        edgevit.create_model("edgevit_xs", widht=3)
    with pytest.raises(ValueError, match="unknown activation"):
        edgevit.create_model("edgevit_xs", act="swish")


def test_no_layernorm_anywhere():
    for name in MODELS:
        model = edgevit.create_model(name, num_classes=10, img_size=64)
        assert not [m for m in model.modules() if isinstance(m, (nn.LayerNorm, nn.GroupNorm))]


class _ConvBN(nn.Sequential):
    """RepViT's Conv2d_BN: fuse() returns the folded conv."""

    def __init__(self, cin, cout, k=3, groups=1):
        super().__init__(nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout))

    @torch.no_grad()
    def fuse(self):
        from edgevit.layers import fuse_conv_bn

        return fuse_conv_bn(self[0], self[1])


class _RepDW(nn.Module):
    """RepViT's RepVGGDW: its fuse() calls its children's fuse() (so they must still be unfused then)."""

    def __init__(self, c):
        super().__init__()
        self.conv, self.conv1, self.bn = _ConvBN(c, c, 3, c), _ConvBN(c, c, 1, c), nn.BatchNorm2d(c)

    def forward(self, x):
        return self.bn(self.conv(x) + self.conv1(x) + x)

    @torch.no_grad()
    def fuse(self):
        from edgevit.layers import fuse_conv_bn

        conv, conv1 = self.conv.fuse(), self.conv1.fuse()
        weight = conv.weight + nn.functional.pad(conv1.weight, [1, 1, 1, 1])
        weight[:, :, 1, 1] += 1.0                                   # the identity branch
        merged = nn.Conv2d(conv.in_channels, conv.out_channels, 3, padding=1, groups=conv.groups)
        merged.weight.copy_(weight)
        merged.bias.copy_(conv.bias + conv1.bias)
        return fuse_conv_bn(merged, self.bn)


class _Deploy(nn.Module):
    """MobileOne-style: reparameterizes in place (switch_to_deploy), and a VAE-like method whose
    reparameterize(mu, logvar) must not be mistaken for a deploy hook."""

    def __init__(self, c):
        super().__init__()
        self.a, self.b, self.fused = nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 1), None

    def forward(self, x):
        return self.fused(x) if self.fused is not None else self.a(x) + self.b(x)

    @torch.no_grad()
    def switch_to_deploy(self):
        self.fused = nn.Conv2d(self.a.in_channels, self.a.out_channels, 1)
        self.fused.weight.copy_(self.a.weight + self.b.weight)
        self.fused.bias.copy_(self.a.bias + self.b.bias)
        del self.a, self.b
        self.a = self.b = None

    def reparameterize(self, mu, logvar):
        raise AssertionError("not a deploy hook")


def test_foreign_modules_that_fuse_themselves_are_respected():
    """A RepViT-style block whose fuse() calls its children's fuse() failed with "'Conv2d' object has no
    attribute 'fuse'" when children were fused first; now each module that fuses itself owns its subtree."""
    torch.manual_seed(0)
    model = nn.Sequential(_ConvBN(3, 8), _RepDW(8), _Deploy(8), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 5))
    randomize_norms(model, seed=3)
    model.eval()
    fused = edgevit.fuse_for_deploy(model, strict=False)
    assert not [m for m in fused.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert fused[2].fused is not None and model[2].fused is None     # in place on the copy, not the original
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert (fused(x) - model(x)).abs().max().item() < 1e-4


def test_residual_stream_equalization_is_float_exact_and_evens_the_channels():
    """benchmarks.int8_sim.equalize_stream rescales each stage's residual stream per channel and folds the scales
    into every conv that writes or reads it: the float model computes the same logits, and with alpha = 1 every
    channel of every stage's stream spans the same range (what one per-tensor int8 scale then fits)."""
    from benchmarks.int8_sim import _stream_ranges, equalize_stream

    torch.manual_seed(0)
    model = edgevit.create_model("edgevit_wear", num_classes=10, img_size=64).eval()
    with torch.no_grad():   # trained-looking statistics: BN that does not start as the identity, uneven channels
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.2, 3.0)
                m.bias.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    fused = edgevit.fuse_for_deploy(model)
    x = torch.randn(16, 3, 64, 64)
    with torch.no_grad():
        before = fused(x)
    uneven = {i: float(r.max() / r.min()) for i, r in _stream_ranges(fused, x).items()}
    equalize_stream(fused, x, 1.0)
    with torch.no_grad():
        assert torch.allclose(fused(x), before, rtol=1e-4, atol=1e-4 * float(before.abs().max()))
    even = {i: float(r.max() / r.min()) for i, r in _stream_ranges(fused, x).items()}
    assert all(v > 1.5 for v in uneven.values()), uneven
    assert all(abs(v - 1) < 1e-3 for v in even.values()), even
