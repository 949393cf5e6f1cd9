"""A search's device budget: projected int8 latency of a design on each profile's core (search.table's
prediction, device_sim.arm.projection's CPI and clock), held against a limit given as a ratio to a
baseline model on the same core or in milliseconds. Projected, never measured: no ARM device is used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from contract.errors import UserError
from edgevit.sizes import check_img_size
from export.formats import FORMATS
from search.space import Design
from search.table import MODELS, TABLE_FORMAT, load_table, model_count, predict

__all__ = ["Budget", "cheapest_designs", "project"]


@dataclass(frozen=True)
class Budget:
    profiles: tuple[str, ...] = ("smartwatch", "ar-glasses")
    max_ratio: float | None = 0.8          # design int8 instructions / baseline's, on each profile's core
    baseline: str = "mobilenetv2_100"
    max_ms: float | None = None            # or: projected ms, 1 thread, on each profile
    img: int = 224                         # the input size latency is judged at (the seed's setting)

    def __post_init__(self):
        if not self.profiles:
            raise UserError("--profile names no profile; give one or more, e.g. --profile smartwatch,ar-glasses")
        if (self.max_ratio is None) == (self.max_ms is None):
            raise UserError("give the budget as --max-ratio (to --baseline) or as --max-ms, not both and not neither")
        limit = self.max_ratio if self.max_ratio is not None else self.max_ms
        if not (limit > 0 and math.isfinite(limit)):
            raise UserError(f"the budget must be a positive, finite number (--max-ratio or --max-ms), got {limit}")
        table = load_table()
        self.check_table(table)
        self.check_reachable(table)

    def check_table(self, table: dict | None = None) -> None:
        """Everything the budget needs from the latency table, checked before any work: the input size, each
        profile's core, the baseline's count."""
        from device_sim.profiles import load_profile

        table = table or load_table()
        if self.img not in table["img_sizes"]:
            sizes = ", ".join(map(str, table["img_sizes"]))
            try:
                check_img_size(self.img)
                add = f" (or add it: `python -m search.table build --img {self.img}`)"
            except ValueError:   # a size the family cannot take: nothing to add
                add = ""
            raise UserError(f"--latency-img {self.img}: the latency table covers the input sizes {sizes}; choose "
                            f"one{add}")
        if self.max_ratio is not None and self.baseline not in MODELS:
            raise UserError(f"--baseline {self.baseline}: the latency table counts {', '.join(MODELS)}; choose one")
        for name in self.profiles:
            core = load_profile(name).core
            if core == "host":
                raise UserError(f"profile {name} runs on the host: its latency cannot be projected; choose a profile "
                                "with an ARM core (smartwatch, ar-glasses, phone)")
            if core not in table["cores"]:
                raise UserError(f"profile {name} runs on {core}, which the latency table has not counted (it has "
                                f"{', '.join(table['cores'])}); choose another profile or rebuild the table with "
                                f"`python -m search.table build --cores {core}`")

    def check_reachable(self, table: dict | None = None) -> None:
        """Refuses a budget that no design of the space meets on some profile, before any trial is sampled
        (the search would otherwise reject every candidate untrained until it gives up)."""
        table = table or load_table()
        rows = [project(d, self, table) for d in cheapest_designs()]
        for name in self.profiles:
            best = min(rows, key=lambda r: r[name]["instructions"])[name]
            if not best["within"]:
                need = f"--max-ratio {math.ceil(100 * best['ratio']) / 100:g}" if self.max_ratio is not None \
                    else f"--max-ms {math.ceil(10 * best['ms']) / 10:g}"
                raise UserError(f"no design of the search space meets {self.limit_text()} on {name}: the cheapest "
                                f"projects at {best['ratio']:.2f}x {self.baseline} ({best['ms']:.1f} ms) at "
                                f"{self.img}x{self.img}; loosen the budget to at least {need}")

    def limit_text(self) -> str:
        return f"<= {self.max_ratio}x {self.baseline} int8" if self.max_ratio is not None else f"<= {self.max_ms} ms"

    def describe(self) -> str:
        limit = self.limit_text()
        return f"{limit} on {', '.join(self.profiles)} at {self.img}x{self.img} (projected, 1 thread)"


def cheapest_designs() -> list[Design]:
    """The designs with the space's smallest widths, depths and FFN, under every attention placement and head
    count (an attention block may cost less than the local block it replaces): one of them is the cheapest
    design of the space on any core."""
    from search.space import CHOICES

    c, depths = CHOICES, tuple(min(CHOICES[f"d{i}"]) for i in range(4))
    return [Design(tuple(min(c[f"w{i}"]) for i in range(4)), depths, (0, 0, v2, v3), min(c["mlp"]), h)
            for v2 in c["vit2"] if v2 <= depths[2] for v3 in c["vit3"] if v3 <= depths[3] for h in c["heads"]]


def project(subject: Design | str, budget: Budget, table: dict | None = None, img: int | None = None) -> dict:
    """Per profile: core, instructions, projected ms (1 thread), ratio to the baseline, and whether the
    budget holds. `subject`: a design of the space or the name of a model the table counted whole."""
    from device_sim.arm.projection import load_calibration, project_ms
    from device_sim.profiles import load_profile

    table = table or load_table()
    cal = load_calibration()
    img = img or budget.img
    rows = {}
    for name in budget.profiles:
        prof = load_profile(name)
        n = predict(subject, img, prof.core, table) if isinstance(subject, Design) else \
            model_count(subject, img, prof.core, table)
        base = model_count(budget.baseline, img, prof.core, table)
        ms = project_ms(n, prof.core, prof.clock_ghz, 1, cal, arithmetic=FORMATS[TABLE_FORMAT].arithmetic)
        ratio = n / base
        ok = ratio <= budget.max_ratio if budget.max_ratio is not None else ms <= budget.max_ms
        rows[name] = {"core": prof.core, "instructions": n, "ms": ms, "ratio": ratio, "within": bool(ok)}
    return rows
