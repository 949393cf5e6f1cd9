"""The performance goals of edgevit, evaluated from one benchmark run (ratios measured side by side)."""

from __future__ import annotations

from export.formats import FORMATS

__all__ = ["evaluate_goals", "p50", "ratio", "rate", "TIE_BAND"]

TIE_BAND = 0.05   # latency differences under 5% are within this machine's run-to-run noise


def p50(bucket: dict, config: str, threads: int = 1) -> float | None:
    stats = bucket.get("latency_ms", {}).get(f"{config}|t{threads}") if bucket else None
    return stats["p50"] if stats else None


def _goal(gid: int, title: str, target: str, measured: str | None, met: bool | None, details: dict) -> dict:
    summary = f"{measured} (target {target})" if measured is not None else f"not evaluated in this run ({target})"
    return {"id": gid, "title": title, "target": target, "measured": measured, "met": bool(met) if met is not None
            else False, "evaluated": met is not None, "summary": summary, "details": details}


def ratio(a, b):
    """a / b, or None when either is missing (or b is 0)."""
    return a / b if a is not None and b else None


def rate(gmacs, ms):
    """GMAC/s of `gmacs` done in `ms` milliseconds, or None."""
    return gmacs / (ms / 1e3) if gmacs and ms else None


def evaluate_goals(res: dict) -> list[dict]:
    models, ceil, digits = res["models"], res["ceiling"], res["digits"]
    xs, mb = models.get("edgevit_xs"), models.get("mobilenetv2_100")
    ceil_fp32, ceil_int8 = p50(ceil, "litert-fp32"), p50(ceil, "litert-int8")
    ceil_ratio = ratio(ceil_int8, ceil_fp32)
    goals = []

    xs_int8, mb_int8 = p50(xs, "litert-int8"), p50(mb, "litert-int8")
    acc_xs = (digits.get("default") or {}).get("pytorch_acc")
    acc_mb = (digits.get("mobilenetv2_100") or {}).get("pytorch_acc")
    speed = ratio(xs_int8, mb_int8)
    met = None if speed is None or acc_xs is None or acc_mb is None else speed <= 1.0 and acc_xs >= acc_mb
    goals.append(_goal(1, "MobileNet speed", "edgevit_xs int8 p50 <= 1.0x mobilenetv2_100 int8 p50 (224, 1 thread) "
                       "and digits accuracy >= MobileNetV2's",
                       None if met is None else f"{speed:.2f}x ({xs_int8:.2f} vs {mb_int8:.2f} ms); digits "
                       f"{100 * acc_xs:.2f}% vs {100 * acc_mb:.2f}%", met,
                       {"edgevit_xs_int8_ms": xs_int8, "mobilenetv2_int8_ms": mb_int8, "ratio": speed,
                        "edgevit_xs_digits_acc": acc_xs, "mobilenetv2_digits_acc": acc_mb}))

    xs_fp32 = p50(xs, "litert-fp32")
    xs_ratio = ratio(xs_int8, xs_fp32)
    bound = None if ceil_ratio is None else 1.1 * ceil_ratio
    met = None if xs_ratio is None or bound is None else xs_ratio <= bound
    goals.append(_goal(2, "int8 as fast as the hardware allows", "edgevit_xs int8/fp32 <= 1.1x the ceiling conv's "
                       "int8/fp32", None if met is None else f"{xs_ratio:.2f} vs bound {bound:.2f} "
                       f"(ceiling {ceil_ratio:.2f})", met,
                       {"edgevit_xs_int8_over_fp32": xs_ratio, "ceiling_int8_over_fp32": ceil_ratio, "bound": bound,
                        "mobilenetv2_int8_over_fp32": ratio(mb_int8, p50(mb, "litert-fp32"))}))

    per_block = {}
    for name, m in models.items():
        if name.startswith("edgevit") and m.get("attention_blocks") and not m.get("design_only"):
            for fmt, g in m["graph"].items():
                if FORMATS[fmt].tflite:
                    per_block[f"{name}/{fmt}"] = g["transposes"] / m["attention_blocks"]
    for name, d in digits.items():
        if d["model"].startswith("edgevit") and name == "default" and d.get("attention_blocks"):
            per_block[f"digits-{d['model']}/int8"] = d["transposes"] / d["attention_blocks"]
    worst = max(per_block.values()) if per_block else None
    goals.append(_goal(3, "few layout shuffles", "<= 2 TRANSPOSE per attention block in every exported edgevit .tflite",
                       None if worst is None else f"at most {worst:.1f} per block over {len(per_block)} files",
                       None if worst is None else worst <= 2, {"per_block": per_block}))

    gmacs = xs["gmacs"] if xs else None
    xs_rate = rate(gmacs, xs_int8)
    ceil_rate = rate(ceil["gmacs"], ceil_int8)
    fraction = ratio(xs_rate, ceil_rate)
    goals.append(_goal(4, "close to the machine", "edgevit_xs int8 >= 60% of the int8 ceiling's GMAC/s",
                       None if fraction is None else f"{100 * fraction:.0f}% ({xs_rate:.0f} of {ceil_rate:.0f} GMAC/s)",
                       None if fraction is None else fraction >= 0.6,
                       {"edgevit_xs_int8_gmacs_per_s": xs_rate, "ceiling_int8_gmacs_per_s": ceil_rate,
                        "fraction": fraction, "mobilenetv2_fraction": ratio(rate(mb["gmacs"] if mb else None, mb_int8),
                                                      ceil_rate)}))

    goals.append(_design_goal(res))
    return goals


def _design_goal(res: dict) -> dict:
    rows = []
    for d in res["designs"]:
        bucket = res["models"].get(d["latency_key"])
        acc = (res["digits"].get(d["name"]) or {})
        rows.append({"name": d["name"], "int8_ms": p50(bucket, "litert-int8"), "fp32_ms": p50(bucket, "litert-fp32"),
                     "int8_acc": acc.get("int8_acc"), "pytorch_acc": acc.get("pytorch_acc")})
    scored = [r for r in rows if r["int8_ms"] is not None and r["int8_acc"] is not None]
    if len(scored) < 2:
        return _goal(5, "defaults chosen by measurement", "the shipped act/attention is the fastest int8 design "
                     "within 0.5 pp of the best digits accuracy", None, None, {"designs": rows})
    best_acc = max(r["int8_acc"] for r in scored)
    eligible = [r for r in scored if r["int8_acc"] >= best_acc - 0.005]
    fastest = min(eligible, key=lambda r: r["int8_ms"])
    default = next(r for r in scored if r["name"] == "default")
    met = default in eligible and default["int8_ms"] <= fastest["int8_ms"] * (1 + TIE_BAND)
    return _goal(5, "defaults chosen by measurement", "the shipped act/attention is the fastest int8 design within "
                 f"0.5 pp of the best digits accuracy (ties within {100 * TIE_BAND:.0f}%)",
                 f"fastest eligible: {fastest['name']} ({fastest['int8_ms']:.2f} ms); default "
                 f"{default['int8_ms']:.2f} ms at {100 * default['int8_acc']:.2f}%", met,
                 {"designs": rows, "fastest_eligible": fastest["name"]})
