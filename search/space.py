"""The family's design space: what `edgevit search` may choose, and the network pieces ("parts") a design is
made of, each of which the latency table (search.table) has counted on the target cores.

A design is edgevit's layout (edgevit.models.efficientformer): a two-conv stem to 1/4 resolution, four
stages of blocks (depthwise local mixer + FFN; self-attention in place of the mixer in the last blocks
of stage 3 or 4), a stride-2 Conv-BN between stages, a pooled linear head. What varies: the four stage
widths, the four depths, the FFN expansion, how many attention blocks sit at the end of each of the
last two stages, and the heads. The choices below contain edgevit_xxs and edgevit_xs, and the widths
and depths of EfficientFormerV2-S0's stage layout up to its last width.
"""

from __future__ import annotations

from dataclasses import dataclass

from contract.errors import UserError

__all__ = ["Design", "Part", "CHOICES", "KNOWN", "design_from_params", "all_parts"]

CHOICES = {
    "w0": (16, 24, 32), "w1": (32, 48, 64), "w2": (96, 128, 160), "w3": (160, 192, 224),
    "d0": (1, 2), "d1": (1, 2, 3), "d2": (2, 3, 4, 5, 6, 7, 8), "d3": (2, 3, 4, 5),
    "vit2": (0, 1, 2), "vit3": (0, 1, 2, 3),   # attention blocks at the end of stages 3 and 4
    "mlp": (3, 4), "heads": (2, 4),
}
KEY_DIM, ATTN_RATIO, ACT, ATTENTION = 16, 2, "relu", "bounded"   # the family's shipped defaults


@dataclass(frozen=True)
class Part:
    """One piece of a network as the latency table counts it. kind: stem | down | local | attn | head | overhead."""
    kind: str
    img: int                 # the network's input size (a part's own resolution follows from its stage)
    stage: int = 0
    in_width: int = 0
    width: int = 0
    mlp: int = 0
    heads: int = 0
    classes: int = 0

    @property
    def resolution(self) -> int:
        """Side of the part's input feature map: the image for the stem, 1/4 at stage 0, halving per stage
        (a downsample's input is the previous stage's)."""
        if self.kind == "stem":
            return self.img
        if self.kind == "head":
            return self.img // 32
        if self.kind == "down":
            return self.img // (4 * 2 ** (self.stage - 1))
        return self.img // (4 * 2 ** self.stage) if self.kind != "overhead" else 1

    @property
    def key(self) -> str:
        body = {"stem": f"w{self.width}", "down": f"s{self.stage}/{self.in_width}-{self.width}",
                "local": f"s{self.stage}/w{self.width}/m{self.mlp}",
                "attn": f"s{self.stage}/w{self.width}/m{self.mlp}/h{self.heads}",
                "head": f"w{self.width}/c{self.classes}", "overhead": "-"}[self.kind]
        return f"{self.img}/{self.kind}/{body}"


@dataclass(frozen=True)
class Design:
    widths: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    num_vit: tuple[int, int, int, int]
    mlp_ratio: int = 4
    num_heads: int = 4

    def __post_init__(self):
        for i, (w, d) in enumerate(zip(self.widths, self.depths)):
            if w not in CHOICES[f"w{i}"] or d not in CHOICES[f"d{i}"]:
                raise UserError(f"stage {i + 1} (width {w}, depth {d}) is outside the search space "
                                f"(widths {CHOICES[f'w{i}']}, depths {CHOICES[f'd{i}']})")
        if self.num_vit[:2] != (0, 0) or self.num_vit[2] not in CHOICES["vit2"] or \
                self.num_vit[3] not in CHOICES["vit3"] or any(v > d for v, d in zip(self.num_vit, self.depths)):
            raise UserError(f"attention blocks {self.num_vit} must be in the last two stages, at most their depth")
        if self.mlp_ratio not in CHOICES["mlp"] or self.num_heads not in CHOICES["heads"]:
            raise UserError(f"mlp ratio {self.mlp_ratio} / heads {self.num_heads} outside the space "
                            f"({CHOICES['mlp']}, {CHOICES['heads']})")

    def model_kwargs(self) -> dict:
        """Options of `create_model("edgevit_xs", ...)` that build this design."""
        return {"widths": self.widths, "depths": self.depths, "num_vit": self.num_vit, "mlp_ratio": self.mlp_ratio,
                "num_heads": self.num_heads}

    def params(self) -> dict:
        """The Optuna parameters (CHOICES names) that sample this design: design_from_params' inverse."""
        w, d, v = self.widths, self.depths, self.num_vit
        return {"w0": w[0], "w1": w[1], "w2": w[2], "w3": w[3], "d0": d[0], "d1": d[1], "d2": d[2], "d3": d[3],
                "vit2": v[2], "vit3": v[3], "mlp": self.mlp_ratio, "heads": self.num_heads}

    @property
    def name(self) -> str:
        return ("w" + "-".join(map(str, self.widths)) + "_d" + "-".join(map(str, self.depths)) +
                f"_a{self.num_vit[2]}-{self.num_vit[3]}_m{self.mlp_ratio}_h{self.num_heads}")

    def parts(self, img: int, classes: int) -> list[Part]:
        """Every part of the network in order, one entry per block (repeats included)."""
        w = self.widths
        out = [Part("stem", img, width=w[0])]
        for i, (width, depth, n_vit) in enumerate(zip(w, self.depths, self.num_vit)):
            if i:
                out.append(Part("down", img, stage=i, in_width=w[i - 1], width=width))
            for j in range(depth):
                attn = j >= depth - n_vit
                out.append(Part("attn" if attn else "local", img, stage=i, width=width, mlp=self.mlp_ratio,
                                heads=self.num_heads if attn else 0))
        out.append(Part("head", img, width=w[3], classes=classes))
        return out


def design_from_params(p: dict) -> Design:
    """An Optuna trial's parameters (the CHOICES names) -> a Design."""
    depths = (p["d0"], p["d1"], p["d2"], p["d3"])
    return Design(widths=(p["w0"], p["w1"], p["w2"], p["w3"]), depths=depths,
                  num_vit=(0, 0, min(p["vit2"], depths[2]), min(p["vit3"], depths[3])), mlp_ratio=p["mlp"],
                  num_heads=p["heads"])


def _known() -> dict:
    """The registered family members the space contains (the reference points of a search, the table's checks)."""
    from edgevit.models.efficientformer import SIZES

    out = {}
    for name, size in SIZES.items():
        try:
            out[f"edgevit_{name}"] = Design(size.widths, size.depths, size.num_vit, size.mlp_ratio, size.num_heads)
        except UserError:   # outside the space (edgevit_s: 256 channels, 5 heads)
            pass
    return out


KNOWN = _known()


def all_parts(img: int, classes: int) -> list[Part]:
    """Every distinct part any design of the space can contain at this input size, plus the per-part
    overhead (one invoke and one delegate dispatch, measured on a trivial model)."""
    c = CHOICES
    parts = [Part("overhead", img)]
    parts += [Part("stem", img, width=w) for w in c["w0"]]
    for i in (1, 2, 3):
        parts += [Part("down", img, stage=i, in_width=a, width=b) for a in c[f"w{i - 1}"] for b in c[f"w{i}"]]
    for i in range(4):
        parts += [Part("local", img, stage=i, width=w, mlp=m) for w in c[f"w{i}"] for m in c["mlp"]]
    for i in (2, 3):
        parts += [Part("attn", img, stage=i, width=w, mlp=m, heads=h)
                  for w in c[f"w{i}"] for m in c["mlp"] for h in c["heads"]]
    parts += [Part("head", img, width=w, classes=classes) for w in c["w3"]]
    return parts
