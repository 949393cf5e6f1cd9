"""`edgevit search`: the family's design, searched on the target's latency table under a device budget
(search.study). The search folder holds the study (unless --storage), trials.csv, pareto.png,
summary.json, and the proxy trainings (trials/<design>/, references/<model>/). Running it again
continues the same study; nothing in the folder is ever deleted.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from contract.errors import UserError
from edgevit_cli.main import seed

__all__ = ["add_arguments", "run"]

MARKER = "search.json"       # what makes a folder a search folder (its configuration)
OUTPUT_KIND = "search"       # the writer contract.outputs records for the files below
REWRITTEN = ("trials.csv", "pareto.png", "summary.json")   # rewritten by every run of the search


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/search", help="search folder (default runs/search); an earlier search "
                   "folder is continued")
    p.add_argument("--profile", default="smartwatch,ar-glasses",
                   help="comma-separated device profiles whose projected latency the budget holds (default "
                        "smartwatch,ar-glasses)")
    p.add_argument("--max-ratio", type=float, default=None,
                   help="budget: int8 latency at most this times --baseline's on every profile (default 0.8 "
                        "unless --max-ms)")
    p.add_argument("--max-ms", type=float, default=None, help="budget: projected int8 ms (1 thread) on every profile")
    p.add_argument("--baseline", default="mobilenetv2_100", help="the model --max-ratio is relative to")
    p.add_argument("--latency-img", type=int, default=224,
                   help="input size the latency is judged at (default 224, the seed's setting)")
    p.add_argument("--trials", type=int, default=20, help="trained designs the study should hold (default 20)")
    p.add_argument("--data", default="glyphs", help="proxy task (default glyphs; validation split decides)")
    p.add_argument("--img-size", type=int, default=64, help="proxy training input size (default 64)")
    p.add_argument("--epochs", type=int, default=6, help="proxy training epochs (default 6)")
    p.add_argument("--lr", type=float, default=2e-3, help="proxy training peak learning rate (default 2e-3)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per training (default 1)")
    p.add_argument("--storage", default=None,
                   help="Optuna storage URL shared by workers on many machines (e.g. "
                        "postgresql+psycopg://user@host:5432/db); default: a journal file in --out")
    p.add_argument("--sampler-seed", type=seed, default=None, help="seed of the TPE sampler (default: random)")
    p.add_argument("--references", default="all",
                   help="models trained with the same proxy recipe as reference points (default all of "
                        "search.table.MODELS; 'none' for none, or a comma-separated list)")
    p.add_argument("--no-int8-check", action="store_true",
                   help="do not export each candidate to full int8 before training it (about 30 s a candidate; "
                        "the converter leaves an op in float for some layouts, and those cannot ship)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _check_folder(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()) and _settings(out) is None:
        names = sorted(p.name for p in out.iterdir())[:4]
        raise UserError(f"--out {out} holds files of something else ({', '.join(names)}); a search needs a new or "
                        f"empty folder, or an earlier search folder (with its {MARKER}); choose another --out")
    from contract.outputs import unchanged_outputs

    edited = unchanged_outputs(out, OUTPUT_KIND, REWRITTEN) if out.is_dir() else []
    if edited:
        raise UserError(f"--out {out}: {', '.join(edited)} changed since the search wrote it, and the search rewrites "
                        "it; move it out of the folder (keep your copy elsewhere) and run the search again")


def _settings(out: Path) -> dict | None:
    """The settings an earlier search wrote into `out`, or None when `out` holds no search of ours."""
    import json

    try:
        found = json.loads((out / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and found.get("kind") == "edgevit-search" else None


def _same_settings(out: Path, settings: dict) -> None:
    """A search folder continues its own study only: other budget or recipe settings would judge its trials by
    rules they were not trained under."""
    earlier = _settings(out)
    if earlier is None:
        return
    earlier.setdefault("int8_check", settings["int8_check"])   # not recorded by the first searches
    for key in ("budget", "recipe", "storage", "int8_check"):
        if earlier.get(key) != settings[key]:
            raise UserError(f"--out {out} holds a search with another {key} ({earlier.get(key)}); run it with the "
                            f"options it was started with (see {out / MARKER}), or choose another --out")


def _references(spec: str) -> tuple[str, ...]:
    from search.table import MODELS

    if spec == "none":
        return ()
    names = MODELS if spec == "all" else tuple(s for s in spec.split(",") if s)
    if not names:
        raise UserError("--references names no model; give all, none or a comma-separated list")
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise UserError(f"--references: no latency count for {unknown[0]}; choose from {', '.join(MODELS)}, "
                        "all or none")
    return names


def _config(args):
    from search.budget import Budget
    from search.study import ProxyRecipe, SearchConfig

    max_ratio = args.max_ratio if args.max_ratio is not None or args.max_ms is not None else 0.8
    budget = Budget(profiles=tuple(s for s in args.profile.split(",") if s), max_ratio=max_ratio,
                    baseline=args.baseline, max_ms=args.max_ms, img=args.latency_img)
    recipe = ProxyRecipe(data=args.data, img_size=args.img_size, epochs=args.epochs, lr=args.lr, threads=args.threads)
    return SearchConfig(out=Path(args.out), budget=budget, recipe=recipe, trials=args.trials, storage=args.storage,
                        sampler_seed=args.sampler_seed, progress=not args.no_progress,
                        int8_check=not args.no_int8_check)


def _write_outputs(cfg, study, references: dict) -> dict:
    from contract.outputs import record_outputs, writers_in_turn
    from search.report import plot_pareto, write_trials_csv
    from search.study import trained_designs

    trained = trained_designs(study)
    with writers_in_turn(cfg.out):    # a second worker in the same folder writes these too
        write_trials_csv(study, cfg.budget.profiles, cfg.out / "trials.csv")
        record_outputs(cfg.out, OUTPUT_KIND, cfg.out / "trials.csv")
        if trained or references:
            try:
                plot_pareto(trained, references, cfg.budget, cfg.out / "pareto.png")
                record_outputs(cfg.out, OUTPUT_KIND, cfg.out / "pareto.png")
            except ImportError:
                print("edgevit search: matplotlib is not installed; pareto.png skipped")
    return {"trained": trained, "references": references}


def run(args) -> int:
    import json

    import optuna

    from contract.files import to_json, write_json
    from contract.outputs import record_outputs, writers_in_turn
    from search.study import open_study, run_search, shown_url, train_references

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    out = Path(args.out)
    _check_folder(out)
    cfg = _config(args)
    refs = _references(args.references)
    settings = json.loads(to_json({"kind": "edgevit-search", "budget": vars(cfg.budget), "recipe": vars(cfg.recipe),
                                   "storage": shown_url(cfg.storage), "int8_check": cfg.int8_check}))
    _same_settings(out, settings)
    if cfg.storage:
        open_study(cfg)   # a database that cannot be reached is refused before the folder is made
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot make --out {out}: {e.strerror or e}; choose a folder you can write to") from None
    with writers_in_turn(out):
        if _settings(out) is None:
            write_json(out / MARKER, settings)
            record_outputs(out, OUTPUT_KIND, out / MARKER)
    print(f"edgevit search: {cfg.trials} trained designs under {cfg.budget.describe()}; proxy recipe "
          f"{cfg.recipe.data} {cfg.recipe.img_size}x{cfg.recipe.img_size}, {cfg.recipe.epochs} epochs; "
          f"study: {shown_url(cfg.storage) or out / 'study.journal'}")
    summary = run_search(cfg, on_trial=lambda study: _write_outputs(cfg, study, {}))
    references = train_references(cfg, refs)
    shown = _write_outputs(cfg, summary["study"], references)
    best = max(shown["trained"], key=lambda t: t["val_acc"])
    with writers_in_turn(out):
        write_json(out / "summary.json", {"budget": vars(cfg.budget), "recipe": vars(cfg.recipe), "best": best,
                                          "trained": shown["trained"], "references": references})
        record_outputs(out, OUTPUT_KIND, out / "summary.json")
    lat = ", ".join(f"{p} {r['ratio']:.2f}x ({r['ms']:.1f} ms)" for p, r in best["latency"].items())
    print(f"best: {best['design']} val acc {100 * best['val_acc']:.1f}% (proxy), projected {lat}")
    for name, ref in sorted(references.items()):
        print(f"  reference {name}: val acc {100 * ref['val_acc']:.1f}%")
    print(f"  trials  {out / 'trials.csv'}\n  pareto  {out / 'pareto.png'}\n  summary {out / 'summary.json'}")
    return 0

