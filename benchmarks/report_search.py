"""BENCHMARKS.md's "Search" section: the latency table's check, the search's Pareto front and trials, and the
accuracy protocol's comparison with its verdict, from the newest `make bench-search` and `make
bench-protocol` JSON files."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.protocol import REFERENCE

__all__ = ["newest_search", "newest_protocol", "search_section", "TABLE_TARGET", "GOAL_RATIO"]

TABLE_TARGET = 0.03     # summed prediction vs whole-model count
GOAL_RATIO = 0.8        # the winner's int8 latency vs MobileNetV2's on both wearables


def _newest(out: Path, prefix: str) -> Path | None:
    found = sorted(p for p in (out / "benchmarks" / "results").glob(f"{prefix}-*.json")
                   if not p.stem.endswith("-smoke"))
    return found[-1] if found else None


def newest_search(out: Path) -> Path | None:
    return _newest(out, "search")


def newest_protocol(out: Path) -> Path | None:
    return _newest(out, "protocol")


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _validation_lines(all_rows: list[dict]) -> list[str]:
    rows = [r for r in all_rows if isinstance(r, dict) and "error" in r]
    skipped = [r for r in all_rows if isinstance(r, dict) and "skipped" in r]
    if not rows:
        return ["### The latency table, checked against whole models", "", "No table check in these results: "
                "`make bench-search` runs it.", ""]
    worst = max(abs(r["error"]) for r in rows)
    designs = len({(r["design"], r["img"]) for r in rows})
    lines = ["### The latency table, checked against whole models", "",
             f"{designs} random designs of the space, each exported whole (random weights, the same int8 route) and "
             "counted on the core model, against the sum of its parts' table entries minus the per-part overhead "
             f"(search/table.py). Largest |error| **{100 * worst:.2f}%** (target <= {100 * TABLE_TARGET:.0f}%: "
             f"**{'met' if worst <= TABLE_TARGET else 'not met'}**).", "",
             "| design | input | core | counted (M instr) | predicted (M) | error |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| `{r['design']}` | {r['img']} | {r['core']} | {r['counted'] / 1e6:.3f} | "
                     f"{r['predicted'] / 1e6:.3f} | {100 * r['error']:+.2f}% |")
    if skipped:
        lines += ["", f"{len(skipped)} drawn designs were replaced because the converter could not make them full "
                  "int8 (" + "; ".join(f"`{r['design']}` at {r['img']}: {r['skipped']}" for r in skipped) +
                  "): the search rejects such candidates before training them."]
    return lines


def _rules_from_table(out: Path) -> list[str]:
    path = out / "search" / "latency_table.json"
    return rules_lines(json.loads(path.read_text())) if path.is_file() else []


def _front(trained: list[dict], profile: str) -> list[dict]:
    out, best = [], float("-inf")
    for t in sorted(trained, key=lambda t: (t["latency"][profile]["ms"], -t["val_acc"])):
        if t["val_acc"] > best:
            out.append(t)
            best = t["val_acc"]
    return out


def _search_lines(s: dict) -> list[str]:
    budget, recipe, trained = s["budget"], s["recipe"], s["trained"]
    states = {}
    for t in s["trials"]:
        states[t["state"]] = states.get(t["state"], 0) + 1
    lines = ["### The search", "",
             "`edgevit search` (Optuna TPE): budget int8 latency " +
             (f"<= {budget['max_ratio']}x {budget['baseline']}" if budget.get("max_ratio") is not None
              else f"<= {budget['max_ms']} ms") +
             f" on {', '.join(budget['profiles'])} at {budget['img']}x{budget['img']} "
             f"(projected from the table, 1 thread); proxy training {recipe['data']} {recipe['img_size']}x"
             f"{recipe['img_size']}, {recipe['epochs']} epochs, lr {recipe['lr']:g}, validation fonts decide. "
             f"Trials: {', '.join(f'{n} {k}' for k, n in sorted(states.items()))} (pruned = over budget or not full "
             "int8, never trained; the reason is in each trial's row; fail = interrupted, a stopped worker or a "
             "Ctrl-C, and its design trained again in a later trial" + ("" if s.get("finished", True) else
                                      "; the search was stopped before its target number of trained designs: "
                                      "`edgevit search` on the same folder continues it") + ").", ""]
    for prof in budget["profiles"]:
        lines += [f"Pareto front on {prof}:", "", "| design | val acc (proxy) | projected ms | vs " +
                  budget["baseline"] + " |", "|---|---|---|---|"]
        for t in _front(trained, prof):
            r = t["latency"][prof]
            lines.append(f"| `{t['design']}` | {_pct(t['val_acc'])} | {r['ms']:.1f} | {r['ratio']:.2f}x |")
        lines.append("")
    if s.get("references"):
        lines += ["Reference models, the same proxy recipe:", "", "| model | val acc | " +
                  " | ".join(f"{p} ms (ratio)" for p in budget["profiles"]) + " |",
                  "|---|---|" + "---|" * len(budget["profiles"])]
        for name, ref in sorted(s["references"].items()):
            cells = " | ".join(f"{ref['latency'][p]['ms']:.1f} ({ref['latency'][p]['ratio']:.2f}x)"
                               for p in budget["profiles"])
            lines.append(f"| {name} | {_pct(ref['val_acc'])} | {cells} |")
        lines.append("")
    lines += [f"![search Pareto front]({s['plot']})", "", *layout_lines(trained, recipe)]
    return lines


LAYOUT = (("attention blocks in stage 3", lambda p: p["vit2"]), ("attention blocks in stage 4", lambda p: p["vit3"]),
          ("stage-4 depth", lambda p: p["d3"]), ("stage-3 depth", lambda p: p["d2"]),
          ("stage 1+2 depth", lambda p: p["d0"] + p["d1"]), ("stage-2 width", lambda p: p["w1"]),
          ("stage-4 width", lambda p: p["w3"]), ("FFN ratio", lambda p: p["mlp"]))


def layout_lines(trained: list[dict], recipe: dict) -> list[str]:
    """What the most accurate trained designs have in common, against the rest (means of each layout feature), and
    how far apart proxy accuracies must be to mean anything (the validation split's binomial noise)."""
    if len(trained) < 6:
        return []
    ranked = sorted(trained, key=lambda t: -t["val_acc"])
    top, rest = ranked[:len(ranked) // 3], ranked[len(ranked) // 3:]

    def mean(group, f):
        return sum(f(t["params"]) for t in group) / len(group)

    cells = [f"{name} {mean(top, f):.1f} vs {mean(rest, f):.1f}" for name, f in LAYOUT
             if abs(mean(top, f) - mean(rest, f)) >= 0.25 * max(abs(mean(rest, f)), 1e-9) or "attention" in name]
    best = ranked[0]["val_acc"]
    noise = 100 * (best * (1 - best) / max(recipe.get("val_images", 744), 1)) ** 0.5
    pairs = []   # designs that differ only in their attention blocks: what attention buys, on each core
    for a in trained:
        for b in trained:
            pa, pb = a["params"], b["params"]
            if pa["vit2"] + pa["vit3"] > pb["vit2"] + pb["vit3"] and \
                    all(pa[k] == pb[k] for k in pa if k not in ("vit2", "vit3", "heads")):
                cost = ", ".join(f"{p} +{a['latency'][p]['ratio'] - b['latency'][p]['ratio']:.2f}x"
                                 for p in a["latency"])
                pairs.append(f"`{a['design']}` against `{b['design']}`: {100 * (a['val_acc'] - b['val_acc']):+.1f} pp "
                             f"proxy accuracy for {cost} of MobileNetV2's latency")
    return [f"The {len(top)} most accurate of {len(trained)} trained designs against the rest (means): "
            + "; ".join(cells) + ". One proxy accuracy carries about +-" + f"{noise:.1f} pp of binomial noise (one "
            "standard deviation on the validation split), so neighbours on the front within ~2x that are not "
            "resolved; the layout trend, not the exact ranking, is the result.", "",
            *([f"Where attention pays (trained designs that differ only in their attention blocks): "
               f"{'; '.join(pairs)}. "
               f"The difference of two proxy accuracies carries about +-{noise * 2 ** 0.5:.1f} pp (one standard "
               "deviation): read these as costs measured exactly and gains measured roughly.", ""] if pairs else [])]


def _protocol_lines(p: dict, rel: Path) -> list[str]:
    lines = ["### The accuracy protocol", "",
             f"From [`{rel}`]({rel}), {p['created']}. Recipe `{p['recipe']}`; each model's learning rate is the best "
             f"of {', '.join(f'{x:g}' for x in p['lrs'])} on the validation fonts (seed 0), then seeds "
             f"{', '.join(map(str, p['seeds']))} at that rate; test-font accuracy, mean +- std over the seeds; "
             f"converged = training and validation accuracy each gained < {p['converged_pp']:g} pp over the last "
             "three epochs; Welch's t-test against MobileNetV2, a difference called only at p < 0.05.", "",
             "| model | sweep val acc (lr) | best lr | seeds done | converged | PyTorch test | int8 test | "
             "int8 agreement (min) | residual SQNR (min) | A53 / A55 vs MobileNetV2 at 224 | at 64 |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, m in p["models"].items():
        sweep = ", ".join(f"{_pct(v['val_acc'])} ({lr})" for lr, v in m["sweep"].items()) or "-"
        conv = [v.get("converged") for v in [*m["sweep"].values(), *m["seeds"].values()] if "converged" in v]
        conv_txt = f"{sum(bool(c) for c in conv)} of {len(conv)} runs" if conv else "-"
        stat = {k: (f"{100 * m[k]['mean']:.1f} +- {100 * m[k]['std']:.1f}%" if k in m else "-")
                for k in ("test_acc", "int8_acc")}
        lat = m.get("latency") or {}
        ratios = [" / ".join(f"{lat[img][prof]['ratio']:.2f}x" for prof in ("smartwatch", "ar-glasses"))
                  if img in lat else "-" for img in ("224", "64")]
        agree = [v["int8_agreement"] for v in m["seeds"].values() if "int8_agreement" in v]
        sqnr = [v["residual_sqnr_db"] for v in m["seeds"].values() if v.get("residual_sqnr_db") is not None]
        lines.append(f"| {name} | {sweep} | {m['best_lr'] if m['best_lr'] is not None else '-'} | "
                     f"{len(m['seeds'])} of {len(p['seeds'])} | {conv_txt} | {stat['test_acc']} | {stat['int8_acc']} | "
                     f"{_pct(min(agree)) if agree else '-'} | {f'{min(sqnr):.1f} dB' if sqnr else '-'} | "
                     f"{ratios[0]} | {ratios[1]} |")
    lines.append("")
    for name, cmp in p.get("comparison", {}).items():
        t = cmp["test_acc"]
        tt = "n/a" if t["t"] is None else f"{t['t']:.2f}"
        lines.append(f"- {name} vs MobileNetV2: {t['diff_pp']:+.2f} pp (PyTorch), Welch t = {tt}, "
                     f"p = {t['p']:.3f}: **{t['verdict']}**; int8 {cmp['int8_acc']['diff_pp']:+.2f} pp, "
                     f"p = {cmp['int8_acc']['p']:.3f}: **{cmp['int8_acc']['verdict']}**.")
    missing = [n for n, m in p["models"].items() if len(m["seeds"]) < len(p["seeds"])]
    if missing:
        lines.append(f"- Not finished: {', '.join(missing)} (fewer than {len(p['seeds'])} seeds): no verdict yet.")
    return lines


def int8_sim_lines(d: dict, rel: Path) -> list[str]:
    """Where the int8 error of the compared models comes from (benchmarks.int8_sim), beside the real int8."""
    rows = d["runs"]
    if not rows:
        return []
    lines = ["### Where the int8 error comes from", "",
             f"From [`{rel}`]({rel}) (`python -m benchmarks.int8_sim`): test-font top-1 agreement with the float "
             "model when PyTorch rounds only the weights to int8 (per channel, as TFLite), then the activations too "
             f"(per tensor, min/max over the export's {d['calibration_images']} calibration images, as TFLite's "
             "converter), then with activation ranges clipped at a percentile (which TFLite's converter cannot do), "
             "and the real int8 model's.", "",
             "| run | weights int8 | + activations (simulated) | clipped at 99.99% | clipped at 99.9% | TFLite int8 |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['run']} | {_pct(r['weights_int8'])} | {_pct(r['weights_and_activations'])} | "
                     f"{_pct(r['clipped_p99.99'])} | {_pct(r['clipped_p99.9'])} | {_pct(r.get('tflite_int8'))} |")
    ours = [r for r in rows if r["model"].startswith("edgevit") and "tflite_int8" in r]
    if ours:
        w = [100 * (1 - r["weights_int8"]) for r in ours]
        a = [100 * (r["weights_int8"] - r["weights_and_activations"]) for r in ours]
        c = [100 * (r["clipped_p99.99"] - r["weights_and_activations"]) for r in ours]
        lines += ["", f"- On {', '.join(r['run'] for r in ours)}: rounding the weights costs {min(w):.1f}-{max(w):.1f} "
                  f"pp of agreement, the activations another {min(a):.1f}-{max(a):.1f} pp; clipping their ranges "
                  f"would win back {min(c):+.1f} to {max(c):+.1f} pp. The int8 model loses to the resolution of its "
                  "activations, spread over every layer (the debugger's largest share is a few percent, and keeping "
                  "the worst four tensors in float recovers under 1 pp), not to one bad tensor or to the calibration: "
                  "the next step toward 98% is quantization-aware fine-tuning (or 16-bit activations), not a "
                  "converter option."]
    kept = [r for r in ours if r.get("kept_float")]
    if kept:
        gains = {g: [100 * (r["kept_float"][g] - r["weights_and_activations"]) for r in kept if g in r["kept_float"]]
                 for g in kept[0]["kept_float"]}
        ranked = sorted(gains.items(), key=lambda kv: -sum(kv[1]) / len(kv[1]))
        lines += [f"- Left unrounded one group at a time (simulated, {len(kept)} run(s)): "
                  + "; ".join(f"{g} {min(v):+.1f} to {max(v):+.1f} pp" for g, v in ranked)
                  + f". The largest share is the {ranked[0][0]}'s."]
    eq = [r for r in ours if r.get("stream_equalized")]
    for alpha in sorted({k for r in eq for k in r["stream_equalized"]}):
        g = [100 * (r["stream_equalized"][alpha] - r["weights_and_activations"]) for r in eq
             if alpha in r["stream_equalized"]]
        lines += [f"- The residual stream equalized per channel before rounding (float-exact: each stage's stream "
                  f"divided by (channel range / largest range)^{alpha.removeprefix('alpha')}, the scales folded into "
                  "the convs "
                  f"that write and read it; simulated, {len(g)} run(s)): {min(g):+.1f} to {max(g):+.1f} pp "
                  f"(mean {sum(g) / len(g):+.2f}). "
                  + ("It does not close the gap to 98% on its own; export does not apply it." if
                     sum(g) / len(g) < 0.5 else "Worth applying in export.")]
    return lines


def rules_lines(table: dict, img: int = 224) -> list[str]:
    """Design rules read off the latency table, in words: where attention pays on which core, what a stage costs."""
    cores = [c for c in ("cortex-a53", "cortex-a55", "cortex-a76") if c in table["cores"]]
    if img not in table.get("img_sizes", []) or not cores:
        return []

    def n(core: str, key: str) -> float | None:
        return table["cores"][core].get(f"{img}/{key}")

    lines = [f"### Design rules read off the table ({img}x{img}, int8)", ""]
    attn: dict[int, dict[str, float]] = {}
    for stage, width in ((2, 128), (3, 192)):
        ratios = []
        for core in cores:
            a, loc = n(core, f"attn/s{stage}/w{width}/m4/h4"), n(core, f"local/s{stage}/w{width}/m4")
            if a and loc:
                attn.setdefault(stage, {})[core] = a / loc
                ratios.append(f"{a / loc:.2f}x on the {core.removeprefix('cortex-').upper()}")
        if ratios:
            side = img // (4 * 2 ** stage)
            lines.append(f"- An attention block in stage {stage + 1} ({side}x{side} tokens, width {width}) costs "
                         f"{', '.join(ratios)} the instructions of a local (depthwise) block of the same width.")
    for core in cores:
        per = [(s, w, n(core, f"local/s{s}/w{w}/m4")) for s, w in ((0, 32), (1, 64), (2, 128), (3, 192))]
        if all(v for _, _, v in per):
            base = per[2][2]
            lines.append(f"- {core}: one local block costs " + ", ".join(
                f"{v / base:.2f}x (stage {s + 1}, width {w})" for s, w, v in per) +
                " of a stage-3 block; the stem " + f"{n(core, 'stem/w32') / base:.2f}x.")
    return lines + _rules_in_words(attn, {c: n(c, "local/s0/w32/m4") / n(c, "local/s2/w128/m4") for c in cores
                                          if n(c, "local/s0/w32/m4") and n(c, "local/s2/w128/m4")}) + [""]


def _rules_in_words(attn: dict[int, dict[str, float]], first_stage: dict[str, float]) -> list[str]:
    """The rules the ratios above imply, in words, each sentence conditioned on the numbers it states."""
    from device_sim.arm.cores import get_core

    def span(v: dict[str, float]) -> str:
        lo, hi = f"{min(v.values()):.1f}", f"{max(v.values()):.1f}"
        return f"{lo}x" if lo == hi else f"{lo}-{hi}x"

    def names(cs) -> str:
        return "/".join(c.removeprefix("cortex-").upper() for c in cs)

    out = []
    if 2 in attn and 3 in attn:
        late, early = attn[3], attn[2]
        out.append(f"- **Where attention pays.** At 7x7 tokens an attention block costs {span(late)} a local block "
                   f"on every core, at 14x14 {span(early)} (its token mixing grows with the square of the tokens)"
                   + (": on cost, attention belongs in the last stage, where EfficientFormer places it."
                      if min(early.values()) > 1.5 * max(late.values()) else "."))
    kinds = {c: get_core(c).kind for c in first_stage}
    ino = {c: v for c, v in first_stage.items() if kinds[c] == "in-order"}
    ooo = {c: v for c, v in first_stage.items() if kinds[c] == "out-of-order"}
    if ino and ooo and 3 in attn:
        late_ino = {c: attn[3][c] for c in ino if c in attn[3]}
        late_ooo = {c: attn[3][c] for c in ooo if c in attn[3]}
        lo, hi = max(late_ino.values()), min(late_ooo.values())
        dearer = "a little more" if 1.0 < hi / lo <= 1.1 else "more" if hi > lo else "no more"
        out.append(f"- **In-order vs out-of-order.** Relative to a local block, attention costs {dearer} on the "
                   f"out-of-order {names(ooo)} ({span(late_ooo)} in stage 4) than on the in-order wearables' cores "
                   f"{names(ino)} ({span(late_ino)}); a stage-1 block costs {span(ooo)} a stage-3 block on the "
                   f"{names(ooo)} vs {span(ino)} on the {names(ino)}"
                   + (": a design tuned on a phone's big core would shrink the high-resolution stages (and avoid "
                      "attention) more than the watch and the glasses need. Search on the wearable's own core, as "
                      "`edgevit search --profile smartwatch,ar-glasses` does." if min(ooo.values()) >
                      max(ino.values()) else "."))
    return out


def search_section(out: Path) -> list[str]:
    """The whole section, or [] when neither benchmark has run."""
    spath, ppath = newest_search(out), newest_protocol(out)
    if spath is None and ppath is None:
        return []
    lines = ["## Search: ViT at MobileNet speed on the wearables' cores", ""]
    if spath is not None:
        s = json.loads(spath.read_text())
        rel = spath.relative_to(out)
        t = s["table"]
        lines += [f"Generated by `make bench-search` from [`{rel}`]({rel}), {s['created']}. The latency table "
                  f"(search/latency_table.json: {', '.join(f'{n} entries on {c}' for c, n in t['entries'].items())}, "
                  f"inputs {', '.join(map(str, t['img_sizes']))}, built by `make latency-table` in "
                  f"{t['minutes']:.0f} min of this 2-core host) holds the int8 instructions per inference of every "
                  "part a design can contain, counted under qemu on each core model (**projected** latency = "
                  "instructions x CPI / clock, no ARM device used).", "",
                  *_validation_lines(s["validation"]), "", *_rules_from_table(out), *_search_lines(s["search"])]
    if ppath is not None:
        lines += _protocol_lines(json.loads(ppath.read_text()), ppath.relative_to(out))
    if (ipath := _newest(out, "int8-sim")) is not None:
        lines += ["", *int8_sim_lines(json.loads(ipath.read_text()), ipath.relative_to(out))]
    if spath is not None and ppath is not None:
        lines += ["", *_goal_lines(json.loads(spath.read_text())["search"], json.loads(ppath.read_text()))]
    return lines


def _registered(trained: list[dict]) -> dict:
    """Trained designs that are registered family members: {design name: model name}."""
    from search.space import KNOWN

    names = {d.name: m for m, d in KNOWN.items()}
    return {t["design"]: names[t["design"]] for t in trained if t["design"] in names}


def _goal_lines(s: dict, p: dict) -> list[str]:
    """The goal: a registered edgevit model at <= 0.8x MobileNetV2's projected int8 latency on both wearables
    and more accurate than MobileNetV2 by a margin the protocol resolves; met, missed (by how much, what binds,
    the next step), an unresolved tie (more seeds), or not judged yet; and what it cost."""
    head, cost = "### The goal on the wearables", _cost_lines(s, p)
    judged = {m: c for m, c in p.get("comparison", {}).items() if m.startswith("edgevit")}
    if not judged:
        return [head, "", _not_judged(s, p), *cost]
    out = [head, ""]
    for model, cmp in judged.items():
        proxy = max((t["val_acc"] for t in s["trained"]), default=None)
        out.append(_verdict(model, cmp["test_acc"], p["models"][model], p["models"].get(REFERENCE, {}), proxy))
    return out + cost


def _ratios(m: dict, img: str) -> dict[str, float]:
    return {prof: r["ratio"] for prof, r in (m.get("latency") or {}).get(img, {}).items()}


def _verdict(model: str, t: dict, m: dict, ref: dict, proxy: float | None) -> str:
    """One model's verdict against MobileNetV2: both sides of the claim, at 224 and at the glyph size."""
    at224, at64 = _ratios(m, "224"), _ratios(m, "64")
    lat = (", ".join(f"{k} {v:.2f}x" for k, v in at224.items()) + " at 224, "
           + ", ".join(f"{k} {v:.2f}x" for k, v in at64.items()) + " at 64")
    fast = bool(at224) and bool(at64) and all(v <= GOAL_RATIO for v in (*at224.values(), *at64.values()))
    acc = (f"{t['diff_pp']:+.2f} pp test-font accuracy vs MobileNetV2 ({100 * m['test_acc']['mean']:.1f} vs "
           f"{100 * ref['test_acc']['mean']:.1f}%, {m['test_acc']['n']} vs {ref['test_acc']['n']} seeds, Welch p = "
           f"{t['p']:.3f})")
    if t["verdict"] == "more accurate" and fast:
        return f"- **Met** by {model}: {acc}, at {lat} MobileNetV2's projected int8 latency."
    if t["verdict"] == "tie":
        return (f"- **Unresolved** for {model}: {acc} is a tie at {100 * (1 - t['alpha']):.0f}%; more seeds of both "
                f"models would resolve it (latency: {lat}). An unresolved tie is not a result: the next step is "
                "`make bench-protocol` with more seeds.")
    slow = {k: v for k, v in {**{f"{k} at 224": v for k, v in at224.items()},
                              **{f"{k} at 64": v for k, v in at64.items()}}.items() if v > GOAL_RATIO}
    binds = [f"accuracy: {model} is {-t['diff_pp']:.2f} pp behind, a difference the protocol resolves"] \
        if t["verdict"] == "less accurate" else []
    binds += [f"latency: {k} {v:.2f}x > {GOAL_RATIO}x" for k, v in slow.items()]
    room = {k: GOAL_RATIO - v for k, v in at224.items()}
    tight = min(room, key=room.get) if room else None
    step = (f"spend the latency still free under the budget ({', '.join(f'{k} {v:+.2f}x' for k, v in room.items())} "
            f"at 224; {tight} binds first) on a wider or deeper design, searched with a proxy training long enough "
            "to rank designs the way the protocol's recipe does"
            + (f" (the best proxy training reached {_pct(proxy)} validation accuracy, the recipe "
               f"{_pct(max(v['val_acc'] for v in m['sweep'].values()))})" if proxy is not None and m.get("sweep")
               else "") + ", or train every compared model with the same teacher (`--teacher`)"
            if not slow else "search again under the budget on the core that misses")
    return (f"- **Missed** by {model}: {acc}; latency {lat} MobileNetV2's projected int8 latency "
            f"(goal <= {GOAL_RATIO}x on both, at both sizes). What binds: {'; '.join(binds)}. A measured no. "
            f"Next step: {step}.")


def _not_judged(s: dict, p: dict) -> str:
    fits = [t for t in s["trained"] if all(r["ratio"] <= GOAL_RATIO for r in t["latency"].values())]
    best = max(fits, key=lambda t: t["val_acc"], default=None)
    registered = _registered(s["trained"])
    lead = (f"the best trained design within budget is `{best['design']}` (proxy validation "
            f"{_pct(best['val_acc'])}, " + ", ".join(f"{k} {v['ratio']:.2f}x" for k, v in best["latency"].items()) +
            " MobileNetV2's projected int8 latency at 224)" +
            (f", registered as **{registered[best['design']]}** (edgevit/models/efficientformer.py SIZES, with "
             "its origin), the model `make demo` trains" if best["design"] in registered else "")
            ) if best else "no trained design within budget yet"
    done = {m: len(r["seeds"]) for m, r in p["models"].items()}
    left = sum(len(p["lrs"]) + len(p["seeds"]) - 1 - len(r["sweep"]) - len([k for k in r["seeds"] if k != "0"])
               for r in p["models"].values())
    minutes = sorted(r["train_seconds"] / 60 for r in p.get("runs", {}).values() if "train_seconds" in r)
    each = f" of about {minutes[len(minutes) // 2]:.0f} min each (median so far)" if minutes else ""
    return (f"- **Not judged yet**: {lead}. The protocol holds " +
            ", ".join(f"{m} {n} of {len(p['seeds'])} seed runs" for m, n in done.items()) +
            f" (each after a {len(p['lrs'])}-rate sweep); {left} trainings{each} are left: `make bench-protocol` "
            "continues them.")


def _cost_lines(s: dict, p: dict) -> list[str]:
    """What the search and the protocol cost on this 2-core host, in minutes of training (1 thread each)."""
    trials = [float(t["train_seconds"]) for t in s.get("trials", []) if t.get("train_seconds")]
    runs = [r["train_seconds"] for r in p.get("runs", {}).values() if "train_seconds" in r]
    if not trials and not runs:
        return []
    spread = "each: wall time, which the host's load and pauses of the benchmark stretch; not the models' cost ratio"
    parts = ([f"the search trained {len(trials)} designs in {sum(trials) / 60:.0f} min"] if trials else []) + \
        ([f"the protocol {len(runs)} runs in {sum(runs) / 60:.0f} min ({min(runs) / 60:.0f}-{max(runs) / 60:.0f} min "
          f"{spread})"] if runs else [])
    return ["", "- Cost on this 2-core host (1 thread per training, two at a time, often beside other work): "
            + ", ".join(parts) + "."]
