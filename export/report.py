"""export_report.json and export_report.md: per artifact, what it costs and what it loses."""

from __future__ import annotations

from pathlib import Path

from contract.files import write_json

__all__ = ["write_report"]


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def write_report(out: Path, report: dict) -> None:
    write_json(out / "export_report.json", report)
    ref = report["reference"]
    lines = [
        f"# Export report: {report['name']}",
        "",
        f"Source: `{report['source'].get('checkpoint') or 'Python API'}`; input {report['input_size']}x"
        f"{report['input_size']} RGB; evaluated on {ref['num_images']} {ref['split']} images; "
        f"PyTorch fp32 accuracy {_fmt(ref.get('accuracy'), '.4f')}.",
        f"Runtime for every TFLite number: {report['runtime']} (XNNPACK on, {report['threads']} thread(s)). "
        "Sizes and latencies are host numbers.",
        "",
        "| format | size MB | accuracy | delta pp | agreement | max abs | cosine | ops | transposes "
        "| delegate partitions | ops outside delegate | export s | targets |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for fmt, a in report["artifacts"].items():
        outside = ", ".join(f"{k} x{v}" for k, v in a.get("ops_outside_delegate", {}).items()) or "-"
        lines.append(
            f"| {fmt} | {a['size_mb']:.2f} | {_fmt(a.get('accuracy'), '.4f')} "
            f"| {_fmt(a.get('accuracy_drop_pp'), '+.2f')} "
            f"| {_fmt(a.get('agreement'), '.4f')} | {_fmt(a.get('max_abs'), '.2e')} | {_fmt(a.get('cosine'), '.6f')} "
            f"| {_fmt(a.get('num_ops'), 'd')} | {_fmt(a.get('transposes'), 'd')} "
            f"| {_fmt(a.get('delegate_partitions'), 'd')} "
            f"| {outside} | {a['export_seconds']:.1f} | {'pass' if a['pass'] else 'FAIL'} |")
    lines += ["", "Targets: " + "; ".join(
        f"{fmt}: " + ", ".join(f"{m} {c['target']}" + ("" if c["pass"] is not None else " (not evaluated: no labels)")
                               for m, c in a["checks"].items())
        for fmt, a in report["artifacts"].items() if a["checks"]) + ".",
        "Delta pp: PyTorch fp32 accuracy minus the artifact's, in percentage points (positive = lost).",
        "", "## Steps", "", "| step | seconds | output MB |", "|---|---|---|"]
    lines += [f"| {s['step']} | {s['seconds']:.1f} | {_fmt(s['size_mb'], '.2f')} |" for s in report["steps"]]
    lines += ["", f"Total: {report['total_seconds']:.1f} s.", ""]
    (out / "export_report.md").write_text("\n".join(lines))
