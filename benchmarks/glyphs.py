"""`make bench-glyphs` (run by `make bench` too): the yardstick that does not saturate.

Trains every family member, the MobileNet baselines and the edgevit_xs design variants on the embedded
glyphs (62 classes, test fonts never seen in training; edgevit.data.glyphs) with the identical recipe
(`edgevit train`'s defaults: the make-train recipe, 64x64), two trainings at a time on one thread each;
exports each to fp32 and int8 (`edgevit export`, whose int8 debugger and repair run when int8 misses a
target); writes benchmarks/results/glyphs-<date>-<host>.json and re-renders BENCHMARKS.md, whose glyphs
section re-judges goals 1 and 5 with these accuracies and the latencies of the newest `make bench`
(host, 224x224) and `make bench-arm` (projected) runs.

Never loses work: a model whose run folder already holds a finished training is not trained again, an
interrupted one is resumed (`--resume`), an export that exists is reused. The work folder is
`.bench-work/glyphs` unless --work says otherwise.

    python -m benchmarks.glyphs [--work DIR] [--jobs 2] [--smoke] [--models a,b,...]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.report import results_path
from benchmarks.run import ROOT, host_info, log

MODELS = {   # result name -> (registered model, `edgevit train` options)
    "edgevit_xxs": ("edgevit_xxs", []), "edgevit_s": ("edgevit_s", []),
    "mobilenetv1_100": ("mobilenetv1_100", []),
    "mobilenetv3_small_100": ("mobilenetv3_small_100", []), "mobilenetv3_large_100": ("mobilenetv3_large_100", []),
    "design-gelu": ("edgevit_xs", ["--act", "gelu"]), "design-hardswish": ("edgevit_xs", ["--act", "hardswish"]),
    "design-blockdiag": ("edgevit_xs", ["--attention", "blockdiag"]),
    "design-heads": ("edgevit_xs", ["--attention", "heads"]),
    "edgevit_xs-seed1": ("edgevit_xs", ["--seed", "1"]),   # the noise floor of one training
    "edgevit_xs": ("edgevit_xs", []), "mobilenetv2_100": ("mobilenetv2_100", []),   # last: goal 1's pair
}
SMOKE = ("edgevit_xxs", "mobilenetv3_small_100")


def _metrics(run: Path) -> dict:
    try:
        metrics = json.loads((run / "metrics.json").read_text()).get("model")
    except (OSError, ValueError, AttributeError):
        return {}
    return metrics if isinstance(metrics, dict) else {}


def _finished(run: Path) -> bool:
    return "test_acc" in _metrics(run)


def _train_cmd(name: str, run: Path, smoke: bool) -> list[str] | None:
    model, options = MODELS[name]
    if _finished(run):
        return None
    cmd = [sys.executable, "-m", "edgevit_cli", "train", "--model", model, "--data", "glyphs", "--img-size", "64",
           "--threads", "1", "--out", str(run), "--no-progress", *options]
    if smoke:
        cmd += ["--epochs", "1"]
    if (run / "last.pt").is_file():
        cmd.append("--resume")    # an interrupted run continues where it stopped
    return cmd


def train_all(names: list[str], work: Path, jobs: int, smoke: bool) -> None:
    """Runs the trainings `jobs` at a time (one thread each); a failure stops the bench with its log."""
    from benchmarks.jobs import run_parallel

    todo = [(f"train-{n}", cmd) for n in names if (cmd := _train_cmd(n, work / "train" / n, smoke)) is not None]
    log(f"glyphs: {len(names) - len(todo)} trainings already done, {len(todo)} to run, {jobs} at a time")
    run_parallel(todo, work / "logs", jobs)


def export_all(names: list[str], work: Path) -> dict:
    rows = {}
    for name in names:
        out = work / "export" / name
        if not (out / "export_report.json").is_file():
            log(f"  export {name}")
            cmd = [sys.executable, "-m", "edgevit_cli", "export", str(work / "train" / name / "best.pt"),
                   "--formats", "onnx,fp32,int8", "--out", str(out)]
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            if proc.returncode not in (0, 3):   # 3: a fidelity target missed (recorded, not fatal)
                raise SystemExit(f"bench-glyphs: export of {name} failed: {proc.stderr.strip()[-300:]}")
        rows[name] = _row(name, work)
    return rows


def _row(name: str, work: Path) -> dict:
    report = json.loads((work / "export" / name / "export_report.json").read_text())
    metrics = _metrics(work / "train" / name)
    a = report["artifacts"]
    int8 = a["int8"]
    repair = int8.get("repair") or {}
    return {"model": MODELS[name][0], "options": MODELS[name][1], "pytorch_acc": report["reference"]["accuracy"],
            "fp32_acc": a["fp32"]["accuracy"], "int8_acc": int8["accuracy"], "int8_agreement": int8["agreement"],
            "int8_drop_pp": int8.get("accuracy_drop_pp"), "int8_pass": int8["pass"],
            "int8_float_layers": [f["module"] for f in repair.get("float_layers", [])],
            "repair": repair.get("result"),
            "worst_layer": (int8.get("debug") or {}).get("layers", [{}])[0].get("module"),
            "test_acc_train": metrics.get("test_acc"), "val_acc": metrics.get("val_acc"),
            "train_seconds": metrics.get("train_seconds"), "epochs": metrics.get("epochs"),
            **_fit(work / "train" / name)}


def _fit(run: Path) -> dict:
    """Training accuracy at the last epoch and its gain over the last three: an underfit model is still climbing."""
    try:
        with open(run / "log.csv", newline="") as f:
            accs = [float(r["train_acc"]) for r in csv.DictReader(f)]
    except (OSError, KeyError, ValueError):
        return {}
    return {"train_acc": accs[-1], "train_acc_gain_3ep": accs[-1] - accs[-4]} if len(accs) >= 4 else {}


def _time_debugger(work: Path, name: str) -> dict:
    """`edgevit quant-report` wall time (fresh process, 32 images) on the glyph-trained export at 64x64, and on
    the same architecture exported at 224x224 (random weights: the time does not depend on them)."""
    out = {}
    big = work / "export-224" / name
    if not (big / "export_report.json").is_file():
        log(f"  export {name} at 224 (random weights) for the debugger's timing")
        code = ("import sys, torch, edgevit, export; from edgevit.data import load_dataset; "
                "d = load_dataset('digits', 224); torch.manual_seed(0); "
                f"m = edgevit.create_model({MODELS[name][0]!r}, num_classes=62, img_size=224).eval(); "
                "export.convert(m, torch.zeros(1, 3, 224, 224), out_dir=sys.argv[1], formats='onnx,int8', "
                "mean=d.mean, std=d.std, calibration=d.train_x[:64], eval_images=d.test_x[:64], "
                "sample_pack=(d.test_x[:32], d.test_y[:32]), verbose=False, repair=False)")
        subprocess.run([sys.executable, "-c", code, str(big)], cwd=ROOT, check=True, capture_output=True)
    for size, folder in ((64, work / "export" / name), (224, big)):
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "edgevit_cli", "quant-report", str(folder), "--images", "32", "--force",
               "--out", str(work / f"quant-report-{size}")]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"bench-glyphs: quant-report on {folder} failed: {proc.stderr.strip()[-300:]}")
        report = json.loads((work / f"quant-report-{size}" / "quant_report.json").read_text())
        out[str(size)] = {"wall_seconds": time.perf_counter() - t0, "report_seconds": report["seconds"],
                          "images": report["images"], "matched": report["matched"],
                          "int8_tensors": report["int8_tensors"], "top": report["layers"][:5],
                          "trained": size == 64}
        log(f"  quant-report {name} @ {size}: {out[str(size)]['wall_seconds']:.1f} s wall on this host")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.glyphs", description=__doc__.splitlines()[0])
    p.add_argument("--work", default=str(ROOT / ".bench-work" / "glyphs"))
    p.add_argument("--jobs", type=int, default=2, help="trainings at a time (one thread each)")
    p.add_argument("--smoke", action="store_true", help="two models, one epoch: checks the machinery only")
    p.add_argument("--models", default=None, help="comma-separated subset of the models, in this order")
    args = p.parse_args(argv)
    work, t0 = Path(args.work), time.perf_counter()
    names = list(SMOKE if args.smoke else MODELS)
    if args.models:
        names = [n.strip() for n in args.models.split(",")]
        unknown = [n for n in names if n not in MODELS]
        if unknown:
            raise SystemExit(f"bench-glyphs: unknown models {unknown}; choose from {', '.join(MODELS)}")
    train_all(names, work, args.jobs, args.smoke)
    done = [*names, *(n for n in MODELS if n not in names)]   # --models limits what is trained now, not the report
    rows = export_all([n for n in done if _finished(work / "train" / n)], work)
    debugger = _time_debugger(work, names[0] if args.smoke else "edgevit_xs")
    res = {"schema": "edgevit.bench-glyphs/1", "created": datetime.now(UTC).isoformat(timespec="seconds"),
           "host": host_info(), "smoke": args.smoke, "data": _data_facts(), "models": rows, "debugger": debugger,
           "recipe": "edgevit train defaults (the make-train recipe), --data glyphs --img-size 64, 1 thread each",
           "seconds": time.perf_counter() - t0}
    from benchmarks.report import rerender
    from contract.files import write_json

    path = results_path(ROOT, "glyphs-", res, "-smoke" if args.smoke else "")
    write_json(path, res)
    log(f"wrote {path}")
    if not args.smoke:
        log(f"wrote {rerender(ROOT)}")
    return 0


def _data_facts() -> dict:
    from edgevit.data import glyphs

    split = glyphs.font_split()
    return {"classes": len(glyphs.CLASSES), "fonts": split,
            "images": {part: len(split[part]) * len(glyphs.CLASSES) * glyphs.PER_FONT[part] for part in split}}


if __name__ == "__main__":
    sys.exit(main())
