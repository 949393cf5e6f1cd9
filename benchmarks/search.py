"""`make bench-search`: the search's numbers for BENCHMARKS.md's "Search" section.

1. The latency table checked against whole-model counts: random designs of the space exported whole at
   64x64 and 224x224, counted on the Cortex-A53 and -A55 models, against the sum of their parts.
2. The search: an `edgevit search` folder (run there with the defaults when it holds no finished search),
   its trials, Pareto front per profile and reference models.
3. The accuracy protocol's newest results (`make bench-protocol`), rendered beside it.
Writes benchmarks/results/search-<date>-<host>.json and re-renders BENCHMARKS.md.

    python -m benchmarks.search [--search DIR] [--designs 10] [--skip-validation]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.report import results_path
from benchmarks.run import ROOT, host_info, log

VALIDATION_CORES = ("cortex-a53", "cortex-a55")
VALIDATION_SIZES = (64, 224)


def _validation(designs: int, work: Path) -> list[dict]:
    from search.table import validate

    rows = []
    for img in VALIDATION_SIZES:
        log(f"table check: {designs} random designs at {img}x{img}")
        rows += validate(designs, img, VALIDATION_CORES, work, seed=img, log=log)
    return rows


def _search(folder: Path, run: bool, storage: str | None = None) -> dict:
    """The search folder as it stands: every trial of its study, the trained designs, the reference models that
    have finished their proxy training. With run=True an unfinished search is first run (to its --trials)."""
    import csv

    from search.budget import Budget, project
    from search.study import ProxyRecipe, SearchConfig, open_study, trained_designs
    from search.table import load_table

    if run and not (folder / "summary.json").is_file():
        log(f"search: running `edgevit search --out {folder}` (defaults)")
        proc = subprocess.run([sys.executable, "-m", "edgevit_cli", "search", "--out", str(folder), "--no-progress"],
                              cwd=ROOT)
        if proc.returncode != 0:
            raise SystemExit(f"bench-search: the search failed (exit {proc.returncode})")
    setup = json.loads((folder / "search.json").read_text())
    budget, recipe = Budget(**{k: tuple(v) if isinstance(v, list) else v for k, v in setup["budget"].items()}), \
        ProxyRecipe(**setup["recipe"])
    storage = storage or setup.get("storage")
    if storage and ":***@" in storage:
        raise SystemExit(f"bench-search: {folder / 'search.json'} keeps the study's storage URL without its password; "
                         "give the URL with --storage")
    study = open_study(SearchConfig(out=folder, budget=budget, recipe=recipe, storage=storage))
    with open(folder / "trials.csv", newline="") as f:
        trials = list(csv.DictReader(f))
    table, references = load_table(), {}
    for ref in sorted((folder / "references").glob("*/metrics.json")):
        metrics = json.loads(ref.read_text()).get("model", {})
        if "val_acc" in metrics:
            references[ref.parent.name] = {"val_acc": metrics["val_acc"],
                                           "latency": project(ref.parent.name, budget, table)}
    plot = ROOT / "benchmarks" / "plots" / "search_pareto.png"
    from search.report import plot_pareto

    trained = trained_designs(study)
    plot_pareto(trained, references, budget, plot)
    return {"budget": setup["budget"], "recipe": setup["recipe"], "trained": trained, "references": references,
            "trials": trials, "finished": (folder / "summary.json").is_file(), "plot": str(plot.relative_to(ROOT))}


def _read_validation(path: Path) -> list[dict]:
    """The rows of `python -m search.table validate --json FILE`, checked before anything is written."""
    try:
        rows = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise SystemExit(f"bench-search: cannot read --validation-json {path}: {e}; give the file written by "
                         "`python -m search.table validate --json FILE`") from None
    keys = {"design", "img", "core"}
    if not (isinstance(rows, list) and all(isinstance(r, dict) and keys <= set(r) for r in rows)
            and any("error" in r for r in rows)):
        raise SystemExit(f"bench-search: --validation-json {path} holds no table-check rows (design, img, core, "
                         "error); give the file written by `python -m search.table validate --json FILE`")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.search", description=__doc__.splitlines()[0])
    p.add_argument("--search", default=str(ROOT / ".bench-work" / "search"), help="the edgevit search folder")
    p.add_argument("--work", default=str(ROOT / ".bench-work" / "table-check"))
    p.add_argument("--storage", default=None, help="the study's storage URL when it is a database (search.json "
                   "keeps it without its password)")
    p.add_argument("--designs", type=int, default=10)
    p.add_argument("--skip-validation", action="store_true", help="reuse the newest results' table check")
    p.add_argument("--validation-json", default=None,
                   help="the table check's rows from `python -m search.table validate --json FILE` (run earlier)")
    p.add_argument("--no-run", action="store_true", help="report the search folder as it stands; do not run it")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    from benchmarks.report_search import newest_search
    from search.table import load_table

    previous = newest_search(ROOT)
    if args.validation_json:
        validation = _read_validation(Path(args.validation_json))
    elif args.skip_validation and previous is not None:
        validation = json.loads(previous.read_text())["validation"]
    else:
        validation = _validation(args.designs, Path(args.work).resolve())
    table = load_table()
    res = {"schema": "edgevit.bench-search/1", "created": datetime.now(UTC).isoformat(timespec="seconds"),
           "host": host_info(), "table": {k: table[k] for k in ("img_sizes", "runtime", "invokes", "minutes")}
           | {"entries": {c: len(v) for c, v in table["cores"].items()}},
           "validation": validation, "search": _search(Path(args.search), not args.no_run, args.storage),
           "seconds": time.perf_counter() - t0}
    from benchmarks.report import rerender
    from contract.files import write_json

    path = results_path(ROOT, "search-", res)
    write_json(path, res)
    log(f"wrote {path}")
    log(f"wrote {rerender(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
