"""`edgevit train`: thin CLI over edgevit.train.train(TrainConfig).

An existing run folder is refused unless --resume (continue it from last.pt with its saved options)
or --force (start over; the run's own files are replaced, anything else there is kept).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from contract.errors import UserError
from edgevit_cli.main import seed

# options that may accompany --resume (they do not change what is trained)
RESUME_OK = {"out", "threads", "no_progress", "resume", "force"}


INPUTS = ("teacher",)   # recovered before they are read (edgevit_cli.main._recover_inputs)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from edgevit.train.config import TrainConfig

    d = TrainConfig(out="runs/default", data="digits")   # the defaults, shown in --help
    # every recipe option defaults to None (= TrainConfig's default), so --resume can tell what was given
    p.add_argument("--model", default=None, help=f"registered model name (default {d.model}; see `edgevit info`)")
    p.add_argument("--data", default=None,
                   help="digits (embedded, default), glyphs (embedded: 62 characters on photos, split by font), "
                        "cifar10:PATH, or an ImageFolder root/<class>/*.png")
    p.add_argument("--img-size", type=int, default=None,
                   help=f"input size, multiple of 32, >= 64 (default {d.img_size})")
    p.add_argument("--epochs", type=int, default=None, help=f"default {d.epochs}")
    p.add_argument("--batch-size", type=int, default=None, help=f"global batch size (default {d.batch_size})")
    p.add_argument("--lr", type=float, default=None, help=f"AdamW peak learning rate (default {d.lr})")
    p.add_argument("--weight-decay", type=float, default=None, help=f"default {d.weight_decay}")
    p.add_argument("--warmup-epochs", type=float, default=None, help=f"default {d.warmup_epochs}")
    p.add_argument("--label-smoothing", type=float, default=None, help=f"default {d.label_smoothing}")
    p.add_argument("--hflip", action=argparse.BooleanOptionalAction, default=None,
                   help="random horizontal flips (default: off for digits and glyphs, on otherwise)")
    p.add_argument("--ema-decay", type=float, default=None, help="EMA of weights, e.g. 0.998 (default 0: off)")
    p.add_argument("--teacher", default=None, help="teacher checkpoint for knowledge distillation")
    p.add_argument("--distill-alpha", type=float, default=None, help=f"default {d.distill_alpha}")
    p.add_argument("--distill-temp", type=float, default=None, help=f"default {d.distill_temp}")
    p.add_argument("--act", default=None, help="activation of edgevit models (relu, gelu, hardswish, relu6)")
    p.add_argument("--attention", default=None, help="attention layout of edgevit models (bounded, blockdiag, heads)")
    p.add_argument("--baseline", default=None,
                   help="also train this model with the identical recipe, e.g. mobilenetv2_100")
    p.add_argument("--seed", type=seed, default=None, help=f"default {d.seed}")
    p.add_argument("--split-seed", type=seed, default=None, help="seed of the train/val/test split (default 0)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: all cores)")
    p.add_argument("--out", default=None, help="run folder (default runs/<model>-<data>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last.pt (epoch, optimizer, EMA, RNG), saved options")
    p.add_argument("--force", action="store_true",
                   help="start over in an --out that holds a run: only the run's own files are replaced (yours stay), "
                        "and the old run comes back if the new one fails before its first checkpoint; with --resume: "
                        "continue even though you changed files the run rewrites (log.csv, best.pt, last.pt, "
                        "metrics.json): they are overwritten")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _default_out(args: argparse.Namespace) -> str:
    """runs/<model>-<data name>, from the options given (their defaults otherwise)."""
    model, data = args.model or "edgevit_xs", args.data or "digits"
    from edgevit.train.config import EMBEDDED

    name = data if data in EMBEDDED else Path(data.split(":")[-1]).name or "data"
    return args.out or f"runs/{model}-{name}"


def config_from_args(args: argparse.Namespace):
    from edgevit.train.config import TrainConfig

    given = {k: v for k, v in vars(args).items() if v is not None}
    model, data = given.get("model", "edgevit_xs"), given.get("data", "digits")
    names = {"lr", "weight_decay", "warmup_epochs", "label_smoothing", "hflip", "ema_decay", "teacher",
             "distill_alpha", "distill_temp", "seed", "split_seed", "baseline", "epochs", "batch_size", "img_size"}
    return TrainConfig(
        out=_default_out(args), model=model, data=data,
        model_kwargs={k: v for k, v in (("act", args.act), ("attention", args.attention)) if v},
        threads=args.threads, progress=not args.no_progress, **{k: v for k, v in given.items() if k in names},
    )


def _resumed_config(args: argparse.Namespace):
    """The saved config of the run in --out, with this invocation's threads and progress. Options given
    with --resume must equal the saved ones (so `make train TRAIN_ARGS=--resume` works)."""
    from dataclasses import fields, replace

    from contract.outputs import not_a_folder, recover_output
    from edgevit.checkpoint import load_checkpoint
    from edgevit.train.config import TrainConfig

    given = {k: v for k, v in vars(args).items() if k not in RESUME_OK and v is not None}
    out = Path(_default_out(args))
    last = out / "last.pt"
    # A --force run killed before its first checkpoint: the earlier run goes back first, so the options read
    # below are that run's, never the killed run's (its last.pt may already stand in the folder)
    recover_output(out, what="training run")
    if not last.is_file():
        file = not_a_folder(out)
        raise UserError(f"nothing to resume: {file} is a file, so {out} is no run folder; give the run's folder as "
                        "--out" if file else f"nothing to resume: {last} does not exist; start the run without "
                        "--resume")
    saved = dict(load_checkpoint(last).train_config)
    for key, value in given.items():
        was = saved.get("model_kwargs", {}).get(key) if key in ("act", "attention") else saved.get(key)
        if value != was:
            raise UserError(f"--resume continues {out} as it was started: --{key.replace('_', '-')} {value} differs "
                            f"from the saved {was}; drop it")
    unknown = sorted(set(saved) - {f.name for f in fields(TrainConfig)})
    if unknown:
        raise UserError(f"{last}: its saved training options hold {', '.join(map(repr, unknown))}, which this edgevit "
                        "does not know (the file was edited or written by another version); start over with --force")
    try:
        cfg = TrainConfig(**saved)
    except UserError as e:
        raise UserError(f"{last}: its saved training options are not valid ({e}); start over with --force") from None
    return replace(cfg, out=str(out), threads=args.threads, progress=not args.no_progress)


def _check_teacher_outside(cfg, force: bool) -> None:
    """A --teacher inside the run folder that --force replaces is moved aside with the earlier run before it is
    read ('does not exist'); refused before any work, as export refuses an --out holding its checkpoint."""
    if not (force and cfg.teacher):
        return
    teacher, out = Path(cfg.teacher).resolve(), Path(cfg.out).resolve()
    if teacher.is_relative_to(out):
        raise UserError(f"--teacher {cfg.teacher} lies in {cfg.out}, the run --force replaces; copy the teacher "
                        "elsewhere first and give that copy")


def run(args: argparse.Namespace) -> int:
    from contract.files import check_writable

    cfg = _resumed_config(args) if args.resume else config_from_args(args)
    if cfg.model_kwargs and not cfg.model.startswith("edgevit"):
        raise UserError(f"--act and --attention apply to edgevit models only, not {cfg.model}")
    from edgevit.registry import create_model

    create_model(cfg.model, num_classes=2, img_size=cfg.img_size, **cfg.model_kwargs)  # options valid?
    check_writable(cfg.out)
    _check_teacher_outside(cfg, args.force)
    from edgevit.train.engine import train

    result = train(cfg, resume=args.resume, force=args.force)
    if int(os.environ.get("RANK", "0")) == 0:
        for role, m in result.items():
            print(f"{role:>8}: {m['name']:<16} test acc {m['test_acc']:.4f}  val acc {m['val_acc']:.4f}  "
                  f"{m['params_m']:.2f} M params  {m['gmacs'] * 1e3:.1f} MMACs  {m['train_seconds']:.0f}s")
        print(f"checkpoint: {Path(cfg.out) / 'best.pt'}  metrics: {Path(cfg.out) / 'metrics.json'}")
    return 0
