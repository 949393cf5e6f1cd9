"""BENCHMARKS.md, its plots and the results JSON, generated from one run. Every number comes from the
run's JSON; only the prose is written here."""

from __future__ import annotations

from pathlib import Path

from benchmarks.goals import TIE_BAND, p50, rate, ratio
from contract.files import atomic_write, write_json

__all__ = ["write_outputs", "rerender", "results_path"]


def results_path(out: Path, prefix: str, res: dict, suffix: str = "") -> Path:
    """benchmarks/results/<prefix><date>-<host><suffix>.json under `out`: where a benchmark's results go."""
    stamp = res["created"][:10] + "-" + res["host"]["hostname"].split(".")[0]
    return out / "benchmarks" / "results" / f"{prefix}{stamp}{suffix}.json"


def _f(v, spec=".2f", none="-") -> str:
    return none if v is None else format(v, spec)


def write_outputs(res: dict, out: Path) -> list[Path]:
    json_path = results_path(out, "", res, "-smoke" if res["smoke"] else "")
    write_json(json_path, res)
    plots = _plots(res, out / "benchmarks" / "plots")
    return [json_path, _write_markdown(res, json_path, plots, out), *plots]


def _write_markdown(res: dict, json_path: Path, plots: list[Path], out: Path) -> Path:
    """BENCHMARKS.md from one make-bench run plus the newest make-bench-glyphs and make-bench-arm runs, if any."""
    from benchmarks.report_arm import arm_section, newest_arm
    from benchmarks.report_glyphs import glyph_section, newest_glyphs

    arm_path = newest_arm(out)
    arm_lines = []
    if arm_path is not None:
        arm_lines = arm_section(arm_path, out)
    glyphs_path = newest_glyphs(out)
    if glyphs_path is not None:
        import json

        arm = json.loads(arm_path.read_text()) if arm_path is not None else None
        arm_lines = [*glyph_section(glyphs_path, out, res, arm), "", *arm_lines]
    from benchmarks.report_search import search_section

    search_lines = search_section(out)
    if search_lines:
        arm_lines = [*search_lines, "", *arm_lines]
    md_path = out / "BENCHMARKS.md"
    markdown = _markdown(res, json_path.relative_to(out), [p.relative_to(out) for p in plots], arm_lines)
    atomic_write(md_path, lambda tmp: tmp.write_text(markdown))
    return md_path


def rerender(out: Path) -> Path:
    """BENCHMARKS.md again from the newest make-bench JSON and the newest bench-arm JSON (the make-bench
    plots are kept as they are)."""
    import json
    import re

    # make bench's results are named <date>-<host>.json; the other benchmarks' carry their name first
    results = sorted(p for p in (out / "benchmarks" / "results").glob("*.json")
                     if re.match(r"\d{4}-\d{2}-\d{2}-", p.name) and not p.stem.endswith("-smoke"))
    if not results:
        raise SystemExit(f"no make-bench results in {out / 'benchmarks' / 'results'}; run `make bench` first")
    res = json.loads(results[-1].read_text())
    plots = [out / "benchmarks" / "plots" / n for n in ("latency_vs_macs.png", "latency_vs_accuracy.png")]
    return _write_markdown(res, results[-1], [p for p in plots if p.is_file()], out)


def _plots(res: dict, folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    family = {n: m for n, m in res["models"].items() if not m.get("design_only")}
    for fmt, marker in (("fp32", "o"), ("int8", "s")):
        xs = [m["gmacs"] for m in family.values()]
        ys = [p50(m, f"litert-{fmt}") for m in family.values()]
        ax.scatter(xs, ys, marker=marker, label=f"ai-edge-litert {fmt}, 1 thread")
        for name, x, y in zip(family, xs, ys):
            ax.annotate(name, (x, y), fontsize=7, xytext=(4, 2), textcoords="offset points")
    ax.set_xlabel(f"GMACs at {res['settings']['img_size']}x{res['settings']['img_size']}")
    ax.set_ylabel("p50 latency, ms (host)")
    ax.set_title("latency vs MACs", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(folder / "latency_vs_macs.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, d in res["digits"].items():
        bucket = res["digits_latency"].get(f"digits-{key}")
        x, y = p50(bucket, "litert-int8"), d["int8_acc"]
        if x is not None:
            ax.scatter([x], [100 * y], marker="s" if key == "mobilenetv2_100" else "o")
            label = d["model"] if key in ("default", "mobilenetv2_100") else f"{d['model']} {key}"
            ax.annotate(label, (x, 100 * y), fontsize=7, xytext=(4, 2), textcoords="offset points")
    ax.set_xlabel("int8 p50 latency, ms (host, 1 thread, digits input size)")
    ax.set_ylabel("digits test accuracy, int8 (%)")
    ax.set_title("latency vs accuracy (trained on digits, identical recipe)", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    paths.append(folder / "latency_vs_accuracy.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def _markdown(res: dict, json_rel: Path, plots: list[Path], arm_lines: list[str]) -> str:
    ceil_rate = rate(res["ceiling"]["gmacs"], p50(res["ceiling"], "litert-int8"))
    lines = [*_header(res, json_rel), "", "## Goals", "", "| # | goal | target | measured | result |",
             "|---|---|---|---|---|"]
    for g in res["goals"]:
        result = "met" if g["met"] else ("not met" if g["evaluated"] else "not evaluated")
        lines.append(f"| {g['id']} | {g['title']} | {g['target']} | {g['measured'] or '-'} | **{result}** |")
    if arm_lines:
        lines += ["", "These goals are judged on **this x86 host**. Goals 1 and 2 on the wearable's instruction set "
                  "(projected Cortex-A53/A55/A76 latency) are in the "
                  "[ARM section](#arm-instructions-on-the-wearables-isa-and-projected-device-latency)."]
    lines += ["", *_goal_prose(res), "", *_family_section(res, ceil_rate), "", *_ceiling_section(res, ceil_rate),
              "", *_segment_section(res, ceil_rate), "", *_design_section(res), "", *_digits_section(res), "",
              *_sim_section(res), "", *_soak_section(res), "", *arm_lines, "", "## Plots", ""]
    lines += [f"![{p.stem}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def _header(res: dict, json_rel: Path) -> list[str]:
    h, v, s = res["host"], res["versions"], res["settings"]
    size = s["img_size"]
    return [
        "# edgevit benchmarks",
        "",
        "Generated by `make bench` (`python -m benchmarks.run`) from one run; every number below is in "
        f"[`{json_rel}`]({json_rel}). Latency is **host** latency on this machine, not a wearable's: "
        "compare ratios measured side by side in the same run, not absolute milliseconds.",
        "",
        f"- Run: {res['created']}, {res['seconds'] / 60:.1f} min"
        + (" (SMOKE run: one small model, few rounds)" if res["smoke"] else ""),
        f"- CPU: {h['cpu']}, {h['cores']} cores, {h['machine']}; ISA: {', '.join(h['isa']) or 'unknown'}",
        f"- Runtimes: ai-edge-litert {v['ai-edge-litert']} (XNNPACK on), onnxruntime {v['onnxruntime']}, "
        f"torch {v['torch']}; converter: onnx2tf {v['onnx2tf']} + tensorflow {v['tensorflow']}",
        f"- Threads: ai-edge-litert 1 and 2 (`t1`, `t2`), ONNX Runtime 1, PyTorch 1; {s['rounds']} timed rounds after "
        f"{s['warmup']} warm-up runs, all configurations interleaved round-robin; p50 unless said otherwise.",
        f"- Models at {size}x{size}, 1000 classes, random weights with BatchNorm statistics re-estimated on "
        "natural-looking (1/f-spectrum) images; digits models are the trained ones.",
    ]


def _family_section(res: dict, ceil_rate) -> list[str]:
    size = res["settings"]["img_size"]
    lines = [f"## The family at {size}x{size}", "",
             "| model | params M | GMACs | fp32 MB | fp16 MB | int8 MB | litert fp32 t1 | fp16 t1 | int8 t1 | fp32 t2 "
             "| int8 t2 | ORT fp32 | torch fp32 | int8/fp32 | int8 GMAC/s | % of ceiling | int8 partitions "
             "| ops outside XNNPACK (int8) | transposes | peak MB (int8) |",
             "|---|" + "---|" * 19]
    for name, m in res["models"].items():
        if m.get("design_only"):
            continue
        g8 = m["graph"]["int8"]

        def lat(config: str, threads: int = 1, m=m):
            return p50(m, config, threads)

        gmac_s = rate(m["gmacs"], lat("litert-int8"))
        lines.append(
            f"| {name} | {m['params_m']:.2f} | {m['gmacs']:.3f} | {m['graph']['fp32']['size_mb']:.2f} "
            f"| {m['graph']['fp16']['size_mb']:.2f} | {g8['size_mb']:.2f} | {_f(lat('litert-fp32'))} "
            f"| {_f(lat('litert-fp16'))} | {_f(lat('litert-int8'))} | {_f(lat('litert-fp32', 2))} "
            f"| {_f(lat('litert-int8', 2))} | {_f(lat('onnxruntime-fp32'))} | {_f(lat('torch-fp32'))} "
            f"| {_f(ratio(lat('litert-int8'), lat('litert-fp32')))} | {_f(gmac_s, '.0f')} "
            f"| {_f(_share(gmac_s, ceil_rate), '.0f')}% "
            f"| {g8['delegate_partitions']} | {_outside(g8)} | {g8['transposes']} "
            f"| {m['memory_mb']['int8']['peak_mb']:.1f} |")
    return lines + ["", "Latency in ms. Peak MB: resident memory of a fresh process that loads and runs the int8 "
                    "model (`edgevit bench`); fp32/fp16 peaks are in the JSON."]


def _outside(graph: dict) -> str:
    return ", ".join(f"{k} x{n}" for k, n in graph["ops_outside_delegate"].items()) or "-"


def _ceiling_section(res: dict, ceil_rate) -> list[str]:
    c = res["ceiling"]
    return ["## The ceiling", "",
            "| model | GMACs | fp32 t1 | int8 t1 | fp32 t2 | int8 t2 | int8/fp32 | fp32 GMAC/s | int8 GMAC/s |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| 1x1 conv 56x56x256->256 | {c['gmacs']:.3f} | {_f(p50(c, 'litert-fp32'))} "
            f"| {_f(p50(c, 'litert-int8'))} | {_f(p50(c, 'litert-fp32', 2))} | {_f(p50(c, 'litert-int8', 2))} "
            f"| {_f(ratio(p50(c, 'litert-int8'), p50(c, 'litert-fp32')))} "
            f"| {_f(rate(c['gmacs'], p50(c, 'litert-fp32')), '.0f')} | {_f(ceil_rate, '.0f')} |"]


def _digits_section(res: dict) -> list[str]:
    lines = ["## Trained on digits", "",
             "| model | design | PyTorch acc | fp32 TFLite acc | int8 acc | int8 agreement | int8 MB | fp32 ms "
             "| int8 ms |", "|---|---|---|---|---|---|---|---|---|"]
    for key, d in res["digits"].items():
        b = res["digits_latency"].get(f"digits-{key}")
        lines.append(f"| {d['model']} | {key} | {100 * d['pytorch_acc']:.2f}% | {100 * d['fp32_acc']:.2f}% "
                     f"| {100 * d['int8_acc']:.2f}% | {100 * d['int8_agreement']:.2f}% | {d['int8_mb']:.2f} "
                     f"| {_f(p50(b, 'litert-fp32'), '.3f')} | {_f(p50(b, 'litert-int8'), '.3f')} |")
    return lines + ["", "Digits models run at their training size (64x64 by default), 1 thread."]


def segments(res: dict) -> list[dict]:
    """The model the prefixes were cut from, split into stem, stages and head: each segment's MACs and
    p50 latency (1 thread) are differences of consecutive prefixes, timed interleaved in one run."""
    name = res.get("probes_of")
    if not name or name not in res["models"]:
        return []
    size = res["settings"]["img_size"]
    probes = sorted(res["probes"].values(), key=lambda pr: pr["stages"])
    points = [(pr["gmacs"], p50(pr, "litert-fp32"), p50(pr, "litert-int8")) for pr in probes]
    full = res["models"][name]
    points.append((full["gmacs"], p50(full, "litert-fp32"), p50(full, "litert-int8")))
    labels = ["input + stem (two 3x3 stride-2 convs)"] + [f"stage {k}" for k in range(1, len(probes))]
    labels.append(f"stage {len(probes)} (attention) + head")
    rows, prev = [], (0.0, 0.0, 0.0)
    for i, (label, point) in enumerate(zip(labels, points)):
        gmacs, fp32, int8 = (None if a is None or b is None else a - b for a, b in zip(point, prev))
        res_hw = size // (4 * 2 ** max(i - 1, 0))
        rows.append({"segment": label, "resolution": res_hw, "gmacs": gmacs, "fp32_ms": fp32, "int8_ms": int8,
                     "int8_over_fp32": ratio(int8, fp32)})
        prev = point
    return rows


def _segment_section(res: dict, ceil_rate) -> list[str]:
    rows = segments(res)
    if not rows:
        return []
    lines = [f"## Where the time goes ({res['probes_of']}, 1 thread)", "",
             "The stem alone, then the stem with each further stage, each globally pooled and exported like the "
             "model, timed interleaved with everything else; each row is the difference of two consecutive "
             "prefixes (the last one: the full model minus the first three stages). Differences of noisy medians: "
             "read the ratios, not the third digit.", "",
             "| segment | output | MMACs | fp32 ms | int8 ms | int8/fp32 | int8 GMAC/s | % of int8 ceiling |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        gmac_s = rate(r["gmacs"], r["int8_ms"]) if (r["int8_ms"] or 0) > 0 else None
        lines.append(f"| {r['segment']} | {r['resolution']}x{r['resolution']} | {r['gmacs'] * 1e3:.1f} "
                     f"| {_f(r['fp32_ms'], '.3f')} | {_f(r['int8_ms'], '.3f')} | {_f(r['int8_over_fp32'])} "
                     f"| {_f(gmac_s, '.0f')} | {_f(_share(gmac_s, ceil_rate), '.0f')}% |")
    return lines


def _share(gmac_s, ceil_rate):
    """Percent of the ceiling's GMAC/s."""
    return None if gmac_s is None or not ceil_rate else 100 * gmac_s / ceil_rate


def _design_section(res: dict) -> list[str]:
    lines = ["## Design choices (edgevit_xs)", "",
             "Each design is exported at the family's size for latency and trained on digits with the make-train "
             "recipe for accuracy.", "",
             "| design | options | params M | GMACs | int8 t1 ms | fp32 t1 ms | int8/fp32 | int8 partitions "
             "| ops outside XNNPACK | transposes | digits PyTorch | digits int8 |", "|---|" + "---|" * 11]
    for d in res["designs"]:
        b, g = res["models"].get(d["latency_key"]), d["graph"]["int8"]
        acc = res["digits"].get(d["name"]) or {}
        opts = ", ".join(f"{k}={tuple(v) if isinstance(v, list) else v}"   # JSON turns tuples into lists
                         for k, v in d["options"].items()) or "act=relu, attention=bounded (shipped)"
        outside = ", ".join(f"{k} x{n}" for k, n in g["ops_outside_delegate"].items()) or "-"
        lines.append(f"| {d['name']} | {opts} | {_f(b['params_m'])} | {_f(b['gmacs'], '.3f')} "
                     f"| {_f(p50(b, 'litert-int8'))} | {_f(p50(b, 'litert-fp32'))} "
                     f"| {_f(ratio(p50(b, 'litert-int8'), p50(b, 'litert-fp32')))} | {g['delegate_partitions']} "
                     f"| {outside} | {g['transposes']} | {_f(_pct(acc.get('pytorch_acc')))} "
                     f"| {_f(_pct(acc.get('int8_acc')))} |")
    return lines


def _sim_section(res: dict) -> list[str]:
    from benchmarks.sim_check import AGREEMENT, OVERHEAD_MS

    sim = res.get("simulator") or {}
    lines = ["## Simulator vs on-device benchmark", "",
             "The trained digits model and edgevit_xs at the family's size (random weights, natural-looking frames) "
             "in the simulator (`edgevit simulate`, ar-glasses profile, 640x480 frames, device 'host' (no "
             "projection)) and in "
             "`edgevit bench`, each in a fresh process. "
             f"Agreement target: medians within {100 * AGREEMENT:.0f}%; the loop's own overhead (end-to-end minus "
             f"inference, at --max-speed) under {OVERHEAD_MS:g} ms.", "",
             "| model | mode | threads | simulator inference p50 ms | bench p50 ms | ratio | agree "
             "| loop overhead p50 ms |",
             "|---|---|---|---|---|---|---|---|"]
    for r in sim.get("rows", []):
        overhead = "-"
        if "overhead_p50_ms" in r:
            overhead = f"{r['overhead_p50_ms']:.3f} ({'ok' if r['overhead_ok'] else 'over'})"
        lines.append(f"| {r['model']} | {r['mode']} | {r['threads']} | {r['simulator_inference_p50_ms']:.3f} "
                     f"| {r['bench_p50_ms']:.3f} | {r['ratio']:.2f} | {'yes' if r['agree'] else 'no'} | {overhead} |")
    off = [r for r in sim.get("rows", []) if not r["agree"]]
    if not off:
        lines += ["", "Every row agrees within the target."]
    else:
        where = "; ".join(f"{r['model']} {r['mode']} t{r['threads']} ({r['ratio']:.2f})" for r in off)
        lines += ["", f"Rows outside the target: {where}. Back to back, the simulator renders and preprocesses a "
                  "camera frame between inferences, which the benchmark does not; the likely cause is that the next "
                  "inference finds the caches holding the frame rather than the model (inferred, not measured), which "
                  "weighs more the shorter the inference."]
    return lines


def _soak_section(res: dict) -> list[str]:
    from benchmarks.soak import RSS_GROWTH_TARGET_MB, WARMUP_FRAMES

    k = res.get("soak")
    if not k:
        return ["## Soak", "", "Not run."]
    rss, p99 = k["rss_mb"], k["p99_ms"]
    return ["## Soak", "",
            f"The simulator over {k['frames']} frames at `--max-speed` in a fresh process (trained digits model, int8, "
            f"1 thread, device 'host' (no projection), 640x480 frames; host latency), {k['wall_seconds']:.0f} s. "
            "Target: resident memory "
            f"grows by less than {RSS_GROWTH_TARGET_MB:g} MB after the first {WARMUP_FRAMES} frames.", "",
            "| frames | RSS after warm-up MB | RSS at end MB | growth MB | slope MB/1000 frames | p99 first quarter ms "
            "| p99 last quarter ms | p50 ms | dropped | invalid outputs | target |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            f"| {k['frames']} | {rss['after_warmup']:.1f} | {rss['end']:.1f} | {rss['growth_after_warmup']:+.2f} "
            f"| {rss['slope_per_1000_frames']:+.3f} | {p99['first_quarter']:.2f} | {p99['last_quarter']:.2f} "
            f"| {k['p50_ms']:.2f} | {k['dropped']} | {k['invalid_outputs']} "
            f"| {'met' if k['target_met'] else 'NOT met'} |",
            "", "At `--max-speed` the loop takes every frame, so none is dropped by design; the real-time drop "
            "policies are measured in the tests and in the simulator section above."]


def _pct(v):
    return None if v is None else 100 * v


def _goal_prose(res: dict) -> list[str]:
    g = {x["id"]: x for x in res["goals"]}
    out = ["### What the goals say here", ""]
    d2, d4 = g[2]["details"], g[4]["details"]
    ceil_rate = d4["ceiling_int8_gmacs_per_s"]
    if g[2]["evaluated"] and not g[2]["met"]:
        text = (f"- **Goal 2** is not met: edgevit_xs runs int8 at {_f(d2['edgevit_xs_int8_over_fp32'])}x its fp32 "
                f"time, the ceiling conv at {_f(d2['ceiling_int8_over_fp32'])}x, MobileNetV2 at "
                f"{_f(d2['mobilenetv2_int8_over_fp32'])}x on this host (ISA: {', '.join(res['host']['isa'])}).")
        rows = segments(res)
        if rows:
            stem, late = rows[0], rows[2:]
            late_fp32 = sum(r["fp32_ms"] or 0 for r in late)
            late_int8 = sum(r["int8_ms"] or 0 for r in late)
            text += (f" Where it loses (the segment table below): the input conversion and the stem take "
                     f"{_f(stem['int8_ms'])} ms in int8 against {_f(stem['fp32_ms'])} ms in fp32 "
                     f"({_f(stem['int8_over_fp32'])}x): its first conv does few MACs per output pixel (3 input "
                     f"channels), and an int8 conv pays a fixed cost per output pixel. "
                     f"{rows[1]['segment'].capitalize()} at {rows[1]['resolution']}x{rows[1]['resolution']} runs at "
                     f"{_f(rows[1]['int8_over_fp32'])}x; the stages from {late[0]['resolution']}x"
                     f"{late[0]['resolution']} down run at {_f(ratio(late_int8, late_fp32))}x together, next to the "
                     f"ceiling's ratio.")
        xs = res["models"].get("edgevit_xs", {}).get("graph", {}).get("int8")
        if xs:
            text += (f" In int8, edgevit_xs runs in {xs['delegate_partitions']} XNNPACK partition(s); ops left "
                     f"outside the delegate: {_outside(xs)}.")
        out.append(text)
    if g[4]["evaluated"] and not g[4]["met"]:
        s0 = res["models"].get("design-s0_layout")
        s0_frac = None
        if s0 and ceil_rate:
            s0_frac = (rate(s0["gmacs"], p50(s0, "litert-int8")) or 0) / ceil_rate
        out.append(
            f"- **Goal 4** is not met: edgevit_xs reaches {_f(100 * (d4['fraction'] or 0), '.0f')}% of the int8 "
            f"ceiling's {_f(ceil_rate, '.0f')} GMAC/s "
            f"(MobileNetV2 {_f(100 * (d4['mobilenetv2_fraction'] or 0), '.0f')}%"
            + (f", the EfficientFormerV2-S0 stage layout {_f(100 * s0_frac, '.0f')}%" if s0_frac else "") +
            "). The per-pixel cost above bounds it: the stem and the blocks at 1/4 and 1/8 resolution do few MACs per "
            "output pixel. The shipped layout puts one block at 1/4 resolution and widens the last two stages; "
            "going further would take a patchify stem, which the family's spec (two 3x3 stride-2 convs) rules out.")
    for gid in (1, 3, 5):
        if g[gid]["evaluated"]:
            out.append(f"- **Goal {gid}** is {'met' if g[gid]['met'] else 'not met'}: {g[gid]['summary']}.")
    fastest = g[5]["details"].get("fastest_eligible")
    if fastest:
        out.append(f"- Design choice: the shipped default is ReLU with bounded attention; the fastest design within "
                   f"0.5 pp of the best digits accuracy in this run is `{fastest}` (latencies within "
                   f"{100 * TIE_BAND:.0f}% count as ties on this noisy machine).")
    return out
