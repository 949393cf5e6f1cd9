"""`make bench-protocol` (the accuracy protocol that resolves; also the search's final stage): the compared
models trained on glyphs with a recipe that converges, the same care for each, several seeds, a test.

For every compared model (the search's winner, MobileNetV2, MobileNetV3-Large):
1. a learning-rate sweep (LRS, seed 0) judged on the validation fonts; the best rate is that model's;
2. more seeds (SEEDS) at that rate; every run with RECIPE (40 epochs, cosine; "converged" = both the
   training and the validation accuracy gained < 1 pp over the last three epochs);
3. each seed's best.pt exported to int8 (`edgevit export`), test-font accuracy PyTorch and int8;
4. mean +- std over the seeds, and Welch's t-test of each model against MobileNetV2 (two-sided, 95%):
   a difference is called only when p < 0.05, otherwise it is a tie.
Resumable and never loses work: a finished training or export in the work folder is reused, an
interrupted one resumed. The results JSON (benchmarks/results/protocol-<date>-<host>.json) holds every
finished run, so a partial run is a partial result, not a lost one.

    python -m benchmarks.protocol [--models a,b] [--jobs 2] [--work DIR] [--smoke]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.jobs import run_parallel
from benchmarks.report import results_path
from benchmarks.run import ROOT, host_info, log

RECIPE = ("--data", "glyphs", "--img-size", "64", "--epochs", "40", "--threads", "1")
LRS = (1e-3, 2e-3, 4e-3)
SEEDS = (0, 1, 2)
REFERENCE = "mobilenetv2_100"
COMPARED = ("edgevit_wear", "mobilenetv2_100", "mobilenetv3_large_100")   # the search's winner first
RECIPE_EPOCHS = int(RECIPE[RECIPE.index("--epochs") + 1])
WORK, WORK_SMOKE = str(ROOT / ".bench-work" / "protocol"), ROOT / ".bench-work" / "protocol-smoke"
CONVERGED_PP = 1.0
ALPHA = 0.05


def run_name(model: str, lr: float, seed: int) -> str:
    return f"{model}-lr{lr:g}-s{seed}"


def _metrics(run: Path) -> dict:
    try:
        m = json.loads((run / "metrics.json").read_text())["model"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return m if isinstance(m, dict) and "test_acc" in m else {}


def recorded_runs() -> dict:
    """Runs finished in an earlier session, as the newest committed results hold them: a fresh machine does
    not train them again (their checkpoints are gone, their numbers are not)."""
    found = sorted(p for p in (ROOT / "benchmarks" / "results").glob("protocol-*.json") if "smoke" not in p.stem)
    return json.loads(found[-1].read_text()).get("runs", {}) if found else {}


class Runs:
    """Finished runs: the work folder's, else the committed results'. A run is {val_acc, test_acc, ...}."""

    def __init__(self, work: Path, recorded: dict, epochs: int | None = None):
        self.work, self.recorded, self.epochs = work, recorded, epochs

    def get(self, name: str) -> dict:
        local = _metrics(self.work / "train" / name)
        if local and self.epochs is not None and local.get("epochs") != self.epochs:
            local = {}   # not this recipe's run (a smoke run, another epoch count): never counted as one
        if local:
            return {"val_acc": local["val_acc"], "test_acc": local["test_acc"], "epochs": local.get("epochs"),
                    "train_seconds": local.get("train_seconds"), **convergence(self.work / "train" / name)}
        return self.recorded.get(name, {})


def _curve(run: Path) -> list[dict]:
    try:
        with open(run / "log.csv", newline="") as f:
            return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]
    except (OSError, ValueError):
        return []


def convergence(run: Path) -> dict:
    """Gains of training and validation accuracy over the last three epochs (pp) and whether both are < 1 pp."""
    rows = _curve(run)
    if len(rows) < 4:
        return {}
    train = 100 * (rows[-1]["train_acc"] - rows[-4]["train_acc"])
    val = 100 * (rows[-1]["val_acc"] - rows[-4]["val_acc"])
    return {"train_gain_pp": train, "val_gain_pp": val, "converged": train < CONVERGED_PP and val < CONVERGED_PP}


def best_lr(model: str, runs: Runs) -> float | None:
    """The sweep's best rate by validation accuracy (seed 0), once every sweep run has finished."""
    vals = {lr: runs.get(run_name(model, lr, 0)).get("val_acc") for lr in LRS}
    return None if any(v is None for v in vals.values()) else max(vals, key=vals.get)


def _train_cmd(model: str, lr: float, seed: int, work: Path, smoke: bool) -> list[str]:
    run = work / "train" / run_name(model, lr, seed)
    recipe = [*RECIPE[:4], "--epochs", "1", "--threads", "1"] if smoke else list(RECIPE)
    cmd = [sys.executable, "-m", "edgevit_cli", "train", "--model", model, "--lr", f"{lr:g}", "--seed", str(seed),
           "--out", str(run), "--no-progress", *recipe]
    return cmd + (["--resume"] if (run / "last.pt").is_file() else [])


def _train_phase(models: list[str], runs: Runs, parallel: int, smoke: bool) -> None:
    """Every model's sweep, then its seeds at the best rate, in the order of `models`: a model's seed runs start
    as soon as its own sweep has finished (the first model's comparison is complete before the last model's
    sweep), each run once."""
    work = runs.work

    def available() -> list:
        jobs = []
        for m in models:
            lr = best_lr(m, runs)
            names = [(lr_, 0) for lr_ in LRS] if lr is None else [(lr, s) for s in SEEDS]
            jobs += [(run_name(m, lr_, s), _train_cmd(m, lr_, s, work, smoke)) for lr_, s in names
                     if not runs.get(run_name(m, lr_, s))]
        return jobs

    log(f"protocol: {len(available())} trainings can start now (seed runs follow each model's sweep)")
    run_parallel(available, work / "logs", parallel)


def _export(name: str, runs: Runs) -> dict:
    """int8 test accuracy of a run's best.pt (an earlier session's recorded numbers when its checkpoint is gone)."""
    keys = ("int8_acc", "int8_agreement", "int8_pass", "residual_sqnr_db")
    if "int8_acc" in runs.recorded.get(name, {}) and not (runs.work / "train" / name / "best.pt").is_file():
        return {k: runs.recorded[name][k] for k in keys if k in runs.recorded[name]}
    work = runs.work
    out = work / "export" / name
    if not (out / "export_report.json").is_file():
        cmd = [sys.executable, "-m", "edgevit_cli", "export", str(work / "train" / name / "best.pt"), "--formats",
               "onnx,int8", "--out", str(out)]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode not in (0, 3):   # 3: a fidelity target missed (recorded, not fatal)
            raise SystemExit(f"bench-protocol: export of {name} failed: {proc.stderr.strip()[-300:]}")
    int8 = json.loads((out / "export_report.json").read_text())["artifacts"]["int8"]
    return {"int8_acc": int8["accuracy"], "int8_agreement": int8["agreement"], "int8_pass": int8["pass"],
            "residual_sqnr_db": _residual_sqnr(out)}


def _residual_sqnr(export_dir: Path) -> float | None:
    """quant-report's worst local SQNR over the tensors that feed a residual ADD (each keeps its own scale)."""
    from export.quant_debug import quant_report

    return quant_report(export_dir, num_images=32)["residual"]["worst_local_sqnr_db"]


def model_result(model: str, runs: Runs) -> dict:
    """What is finished for one model: the sweep, the seeds at its best rate (with int8), mean and std."""
    import numpy as np

    sweep = {f"{lr:g}": r for lr in LRS if (r := runs.get(run_name(model, lr, 0)))}
    lr = best_lr(model, runs)
    seeds = {}
    for s in SEEDS if lr is not None else ():
        name = run_name(model, lr, s)
        if run := runs.get(name):
            seeds[str(s)] = {**run, **_export(name, runs)}
    out = {"sweep": sweep, "best_lr": lr, "seeds": seeds}
    for key in ("test_acc", "int8_acc"):
        vals = [r[key] for r in seeds.values()]
        if len(vals) >= 2:
            out[key] = {"mean": float(np.mean(vals)), "std": float(np.std(vals, ddof=1)), "n": len(vals)}
    return out


def all_runs(models: list[str], runs: Runs) -> dict:
    """Every finished run of these models, and every run recorded before, by name (with int8 numbers where
    the seed runs have them): what a later session on a fresh machine reuses instead of training again."""
    out = dict(runs.recorded)
    for m in models:
        for lr in LRS:
            for s in SEEDS:
                if run := runs.get(name := run_name(m, lr, s)):
                    # int8 too: a seed-0 sweep run is its model's seed 0 once its rate wins
                    out[name] = {**run, **_export(name, runs)}
    return out


def welch(a: list[float], b: list[float]) -> dict:
    """Welch's two-sided t-test of mean(a) vs mean(b): a difference is resolved when p < ALPHA."""
    from scipy import stats

    t, p = stats.ttest_ind(a, b, equal_var=False)
    diff = 100 * (sum(a) / len(a) - sum(b) / len(b))
    if not math.isfinite(p):   # no spread in either group: the seeds agree exactly, so a difference is certain
        t, p = None, (1.0 if diff == 0 else 0.0)
    verdict = ("tie" if not p < ALPHA else "more accurate" if diff > 0 else "less accurate")
    return {"t": None if t is None or not math.isfinite(t) else float(t), "p": float(p), "diff_pp": diff,
            "verdict": verdict, "alpha": ALPHA}


def compare(results: dict) -> dict:
    """Each model against the reference (MobileNetV2) on PyTorch and int8 test accuracy, >= 3 seeds each."""
    ref = results.get(REFERENCE, {}).get("seeds", {})
    out = {}
    for model, res in results.items():
        if model == REFERENCE or len(res.get("seeds", {})) < len(SEEDS) or len(ref) < len(SEEDS):
            continue
        out[model] = {key: welch([r[key] for r in res["seeds"].values()], [r[key] for r in ref.values()])
                      for key in ("test_acc", "int8_acc")}
    return out


LATENCY_PROFILES = ("smartwatch", "ar-glasses")   # Cortex-A53, Cortex-A55
LATENCY_IMGS = (224, 64)                          # the seed's setting, and the size glyph accuracy is measured at


def latency(model: str) -> dict:
    """Projected int8 latency of a compared model (the latency table's whole-model count) and its ratio to
    MobileNetV2's, per input size and wearable profile: both sides of the claim describe the same model."""
    from contract.errors import UserError
    from search.budget import Budget, project

    out = {}
    for img in LATENCY_IMGS:
        try:
            rows = project(model, Budget(profiles=LATENCY_PROFILES, baseline=REFERENCE, img=img), img=img)
        except UserError as e:   # a model the table has not counted: said, not guessed
            return {"error": str(e)}
        out[str(img)] = {p: {"core": r["core"], "ms": r["ms"], "ratio": r["ratio"]} for p, r in rows.items()}
    return out


def _check_args(models: list[str], work: Path, jobs: int) -> None:
    """Bad options refused in one line before any training starts."""
    import edgevit

    known = edgevit.list_models()
    if not models:
        raise SystemExit("bench-protocol: --models names no model; give a comma-separated list, e.g. "
                         + ",".join(COMPARED))
    unknown = [m for m in models if m not in known]
    if unknown:
        raise SystemExit(f"bench-protocol: unknown model {unknown[0]}; choose from {', '.join(known)}")
    if jobs < 1:
        raise SystemExit(f"bench-protocol: --jobs {jobs}: give 1 or more trainings at a time")
    if work.exists() and not work.is_dir():
        raise SystemExit(f"bench-protocol: --work {work} is a file; give a folder")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.protocol", description=__doc__.splitlines()[0])
    p.add_argument("--work", default=WORK)
    p.add_argument("--models", default=",".join(COMPARED), help="comma-separated models to compare")
    p.add_argument("--jobs", type=int, default=2, help="trainings at a time (one thread each)")
    p.add_argument("--smoke", action="store_true", help="one epoch per training: checks the machinery only")
    p.add_argument("--results-only", action="store_true", help="write the JSON from what is finished; train nothing")
    args = p.parse_args(argv)
    work, t0 = Path(args.work), time.perf_counter()
    if args.smoke and args.work == WORK:
        work = WORK_SMOKE   # a smoke run's 1-epoch trainings never share names with the protocol's
    models = [m for m in args.models.split(",") if m]
    _check_args(models, work, args.jobs)
    runs = Runs(work, {} if args.smoke else recorded_runs(), epochs=1 if args.smoke else RECIPE_EPOCHS)
    if not args.results_only:
        _train_phase(models, runs, args.jobs, args.smoke)
    results = {m: {**model_result(m, runs), "latency": latency(m)} for m in models}
    res = {"schema": "edgevit.bench-protocol/1", "created": datetime.now(UTC).isoformat(timespec="seconds"),
           "host": host_info(), "smoke": args.smoke, "recipe": " ".join(RECIPE), "lrs": LRS, "seeds": SEEDS,
           "converged_pp": CONVERGED_PP, "models": results, "comparison": compare(results),
           "runs": all_runs(models, runs),
           "seconds": time.perf_counter() - t0}
    from contract.files import write_json

    path = results_path(ROOT, "protocol-", res, "-smoke" if args.smoke else "")
    write_json(path, res)
    log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
