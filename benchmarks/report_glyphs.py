"""BENCHMARKS.md's glyphs section, from the newest `make bench-glyphs` JSON, with goals 1 and 5 and the
seed's claim re-judged on glyph accuracy and the latencies of the newest `make bench` (host) and
`make bench-arm` (projected) runs."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.goals import TIE_BAND, p50, ratio

__all__ = ["newest_glyphs", "glyph_section", "judge_glyphs"]

ORDER = ("edgevit_xxs", "edgevit_xs", "edgevit_xs-seed1", "edgevit_s", "mobilenetv2_100", "mobilenetv1_100",
         "mobilenetv3_small_100", "mobilenetv3_large_100")
DESIGNS = ("default", "gelu", "hardswish", "blockdiag", "heads")
ACC_BAND = 0.005        # goal 5: within 0.5 pp of the best int8 accuracy
ARM_GOAL1 = 0.8         # benchmarks.arm's goal 1 target on the A53/A55 profiles
DEBUGGER_TARGET_S = 60.0


def newest_glyphs(out: Path) -> Path | None:
    found = sorted(p for p in (out / "benchmarks" / "results").glob("glyphs-*.json") if not p.stem.endswith("-smoke"))
    return found[-1] if found else None


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _design_key(name: str) -> str:
    return "edgevit_xs" if name == "default" else f"design-{name}"


def judge_glyphs(g: dict, host: dict | None, arm: dict | None) -> list[dict]:
    """Goal 1 (host and projected), goal 5 (host and projected) and the seed's claim on glyphs."""
    acc = {k: v["pytorch_acc"] for k, v in g["models"].items()}
    int8 = {k: v["int8_acc"] for k, v in g["models"].items()}
    spread = seed_spread(g["models"])
    if "edgevit_xs" not in acc or "mobilenetv2_100" not in acc:   # a partial run: goal 5 only
        return _goal5(int8, host, arm, spread)
    out = []
    pairs = []
    if host is not None:
        pairs.append(("host (x86, 224x224, 1 thread, measured)",
                      ratio(p50(host["models"].get("edgevit_xs"), "litert-int8"),
                            p50(host["models"].get("mobilenetv2_100"), "litert-int8")), 1.0))
    if arm is not None:
        for profile in ("smartwatch", "ar-glasses"):
            models = arm["projections"][profile]["models"]
            pairs.append((f"{profile} ({arm['projections'][profile]['core']}, projected)",
                          ratio(models["edgevit_xs/int8"]["one_thread_ms"],
                                models["mobilenetv2_100/int8"]["one_thread_ms"]), ARM_GOAL1))
    for where, speed, target in pairs:
        met = speed is not None and speed <= target and acc["edgevit_xs"] >= acc["mobilenetv2_100"]
        out.append({"goal": "1", "where": where, "speed_ratio": speed, "target": target, "met": met,
                    "seed_spread_pp": spread,
                    "edgevit_xs_acc": acc["edgevit_xs"], "mobilenetv2_acc": acc["mobilenetv2_100"]})
    out += _goal5(int8, host, arm, spread)
    claim_speed = [p for p in pairs if p[1] is not None]
    out.append({"goal": "seed", "edgevit_xs_acc": acc["edgevit_xs"], "mobilenetv2_acc": acc["mobilenetv2_100"],
                "seed_spread_pp": spread,
                "edgevit_xs_int8_acc": int8["edgevit_xs"], "mobilenetv2_int8_acc": int8["mobilenetv2_100"],
                "speed": {w: s for w, s, _ in claim_speed},
                "met": acc["edgevit_xs"] > acc["mobilenetv2_100"] and any(s <= 1.0 for _, s, _ in claim_speed)})
    return out


def _goal5(int8: dict, host: dict | None, arm: dict | None, spread: float | None) -> list[dict]:
    out = []
    sources = []
    if host is not None:
        sources.append(("host int8 ms (224)", {d: p50(host["models"].get(_design_key(d)), "litert-int8")
                                                for d in DESIGNS}))
    if arm is not None:
        rows = {r["name"]: r for r in arm["designs"]}
        sources.append(("cortex-a55 instructions vs default",
                        {d: rows[d]["vs_default"]["cortex-a55"] for d in DESIGNS if d in rows}))
    accs = {d: int8.get(_design_key(d) if d != "default" else "edgevit_xs") for d in DESIGNS}
    for where, cost in sources:
        scored = {d: (cost[d], accs[d]) for d in DESIGNS if cost.get(d) is not None and accs[d] is not None}
        if "default" not in scored or len(scored) < 2:
            continue
        best = max(a for _, a in scored.values())
        eligible = {d: c for d, (c, a) in scored.items() if a >= best - ACC_BAND}
        fastest = min(eligible, key=eligible.get)
        met = "default" in eligible and scored["default"][0] <= eligible[fastest] * (1 + TIE_BAND)
        out.append({"goal": "5", "where": where, "fastest_eligible": fastest, "met": met, "seed_spread_pp": spread,
                    "designs": {d: {"cost": c, "int8_acc": a} for d, (c, a) in scored.items()}})
    return out


def glyph_section(path: Path, out: Path, host: dict | None, arm: dict | None) -> list[str]:
    g = json.loads(path.read_text())
    rel = path.relative_to(out)
    data = g["data"]
    lines = [
        "## Glyphs: accuracy on a task that does not saturate",
        "",
        f"Generated by `make bench-glyphs` (also run by `make bench`; its {len(g['models'])} trainings took "
        f"{sum(r.get('train_seconds') or 0 for r in g['models'].values()) / 60:.0f} min of one core in sum, run two at "
        f"a time on this 2-core host; the last, resuming, invocation {g['seconds'] / 60:.0f} min) from "
        f"[`{rel}`]({rel}), {g['created']}. Digits saturates (every model 99.7-100%), so "
        f"accuracy is judged here: {data['classes']} classes (0-9, A-Z, a-z) rendered from matplotlib's fonts on "
        "crops of photographs that scikit-learn and matplotlib ship, with camera effects (edgevit/data/glyphs.py); "
        f"split by font: train {len(data['fonts']['train'])} fonts / {data['images']['train']} images, val "
        f"{len(data['fonts']['val'])} / {data['images']['val']}, test {len(data['fonts']['test'])} / "
        f"{data['images']['test']} (test fonts: {', '.join(f[:-4] for f in data['fonts']['test'])}). "
        f"Recipe: {g['recipe']}; accuracy is top-1 on the test split (unseen fonts).",
        "",
        "| model | PyTorch | TFLite fp32 | TFLite int8 | int8 drop | int8 agreement | int8 notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in [*ORDER, *(f"design-{d}" for d in DESIGNS[1:])]:
        r = g["models"].get(name)
        if r is None:
            continue
        notes = "float: " + ", ".join(r["int8_float_layers"]) if r["int8_float_layers"] else \
            ("targets met" if r["int8_pass"] else f"FAIL; worst layer {r['worst_layer']}")
        label = f"{r['model']} {' '.join(r['options'])}" if r["options"] else name
        drop = "-" if r["int8_drop_pp"] is None else f"{r['int8_drop_pp']:.2f} pp"
        lines.append(f"| {label} | {_pct(r['pytorch_acc'])} | {_pct(r['fp32_acc'])} | {_pct(r['int8_acc'])} | "
                     f"{drop} | {_pct(r['int8_agreement'])} | {notes} |")
    goals = judge_glyphs(g, host, arm)
    lines += ["", f"{_recipe_prose(g['models'])} {_seed_prose(g['models'])} {_agreement_prose(g['models'])}",
              "", *_goal_lines(goals)]
    missing = [n for n in (*ORDER, *(f"design-{d}" for d in DESIGNS[1:])) if n not in g["models"]]
    if missing:
        lines.append(f"- Not in this run (not trained yet: `make bench-glyphs` resumes): {', '.join(missing)}"
                     + ("; goal 5 is therefore not re-judged." if not any(x["goal"] == "5" for x in goals) else "."))
    lines += ["", *_debugger_lines(g)]
    return lines


def _recipe_prose(models: dict) -> str:
    """Every model gets the identical recipe, not its own best one; says how well each fit its training set."""
    text = ("Every model gets the identical recipe, not its own best one (it was tuned on digits for the edgevit "
            "family): read each row as 'with this recipe'.")
    fit = {k: r for k, r in models.items() if r.get("train_acc") is not None and not k.startswith("design-")}
    if not fit:
        return text
    gap = max(abs(r["train_acc"] - r["pytorch_acc"]) for r in fit.values())
    gains = [r["train_acc_gain_3ep"] for r in fit.values()]
    show = ", ".join(f"{k} {_pct(r['train_acc'])}" for k, r in fit.items())
    return (f"{text} No model overfits: training accuracy at the last epoch (on augmented images) is within "
            f"{100 * gap:.1f} pp of test accuracy for every model, and every model still gained "
            f"{100 * min(gains):.1f}-{100 * max(gains):.1f} pp over the last three epochs. What separates them is how "
            f"far the recipe fits the training set: {show}.")


def seed_spread(models: dict) -> float | None:
    """|test accuracy(seed 1) - test accuracy(seed 0)| of edgevit_xs in pp: the noise floor of one training."""
    a, b = models.get("edgevit_xs"), models.get("edgevit_xs-seed1")
    return None if a is None or b is None else 100 * abs(a["pytorch_acc"] - b["pytorch_acc"])


def _seed_prose(models: dict) -> str:
    spread = seed_spread(models)
    if spread is None:
        return ""
    int8 = 100 * abs(models["edgevit_xs"]["int8_acc"] - models["edgevit_xs-seed1"]["int8_acc"])
    return (f"One training is one sample: edgevit_xs trained again with seed 1 (init, batch order, augmentation) "
            f"lands {spread:.1f} pp from seed 0 (int8: {int8:.1f} pp), so differences of that size between rows "
            "are not resolved by this run.")


def _agreement_prose(models: dict) -> str:
    failed = [k for k, r in models.items() if not r["int8_pass"]]
    if not failed:
        return "Every int8 export met its fidelity targets."
    drops = sorted((r["int8_drop_pp"] or 0.0, k) for k, r in models.items())
    return (f"{len(failed)} of {len(models)} int8 exports miss a fidelity target (>= 99% top-1 agreement with float, "
            f"<= 0.5 pp accuracy drop); int8 accuracy drops range from {drops[0][0]:.2f} pp ({drops[0][1]}) to "
            f"{drops[-1][0]:.2f} pp ({drops[-1][1]}): on 62 classes with many near-ties int8 flips ties both ways. "
            f"The automatic repair (more calibration, up to 4 float tensors) met the targets for "
            f"{sum(bool(r['int8_float_layers']) for r in models.values())} of them.")


def _goal_lines(goals: list[dict]) -> list[str]:
    lines = ["### Goals re-judged on glyphs", ""]
    for x in goals:
        verdict = "**met**" if x["met"] else "**not met**"
        if x["goal"] == "1":
            lines.append(f"- Goal 1 on {x['where']}: edgevit_xs int8 at {x['speed_ratio']:.2f}x MobileNetV2's "
                         f"latency (target <= {x['target']:.1f}x) with glyph accuracy {_pct(x['edgevit_xs_acc'])} vs "
                         f"{_pct(x['mobilenetv2_acc'])}: {verdict}{_margin_caveat(x)}.")
        elif x["goal"] == "5":
            d = x["designs"]
            lines.append(f"- Goal 5 by {x['where']}: the fastest design within 0.5 pp of the best int8 glyph accuracy "
                         f"is {x['fastest_eligible']}; " + "; ".join(
                             f"{k} {v['cost']:.2f} at {_pct(v['int8_acc'])}" for k, v in d.items()) + f": {verdict}"
                         + _noise_caveat(x.get("seed_spread_pp")) + ".")
        else:
            speed = ", ".join(f"{w.split(' (')[0]} {s:.2f}x" for w, s in x["speed"].items())
            lines.append(f"- **The seed's claim** (EfficientFormerV2-S0 75.7% vs MobileNetV2 71.8% ImageNet top-1 at "
                         f"equal latency: ViT accuracy at MobileNet speed), on glyphs: edgevit_xs "
                         f"{_pct(x['edgevit_xs_acc'])} vs MobileNetV2 {_pct(x['mobilenetv2_acc'])} (int8 "
                         f"{_pct(x['edgevit_xs_int8_acc'])} vs {_pct(x['mobilenetv2_int8_acc'])}) at latency ratios "
                         f"{speed}: {verdict} (met = more accurate and at or under MobileNetV2's latency somewhere "
                         f"measured or projected){_margin_caveat(x)}.")
    return lines


def _margin_caveat(x: dict) -> str:
    margin, spread = 100 * (x["edgevit_xs_acc"] - x["mobilenetv2_acc"]), x.get("seed_spread_pp")
    if spread is None or abs(margin) > spread:
        return ""
    return (f"; but the accuracy margin ({margin:+.1f} pp) is within one training's seed spread ({spread:.1f} pp): "
            "on accuracy it is a tie")


def _noise_caveat(spread: float | None) -> str:
    if spread is None or spread <= 100 * ACC_BAND:
        return ""
    return (f" (but one training's seed spread, {spread:.1f} pp, exceeds the 0.5 pp band: the accuracy side of "
            "this verdict is within noise)")


def _debugger_lines(g: dict) -> list[str]:
    d = g.get("debugger")
    if not d:
        return []
    small, big = d.get("64"), d.get("224")
    lines = ["### The int8 debugger", ""]
    if small:
        top = ", ".join(f"{r['module'] or '(graph)'} {r['op']} ({100 * r['share']:.0f}%)" for r in small["top"][:3])
        lines.append(f"`edgevit quant-report` on the glyph-trained edgevit_xs int8 export (64x64, 32 images): "
                     f"{small['wall_seconds']:.1f} s wall (target < {DEBUGGER_TARGET_S:.0f} s: "
                     f"**{'met' if small['wall_seconds'] < DEBUGGER_TARGET_S else 'not met'}**), "
                     f"{small['matched']} of {small['int8_tensors']} int8 tensors paired with their float tensor; "
                     f"largest shares of the int8 error: {top}.")
    if big:
        lines.append(f"At 224x224 (same architecture, random weights): {big['wall_seconds']:.1f} s wall.")
    return lines
