"""`edgevit train`: thin CLI over edgevit.train.train(TrainConfig)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    from edgevit.train.config import TrainConfig

    d = TrainConfig(out="runs/default", data="digits")   # the defaults, shown in --help
    p.add_argument("--model", default=d.model, help=f"registered model name (default {d.model}; see `edgevit info`)")
    p.add_argument("--data", default=d.data,
                   help="digits (embedded, default), cifar10:PATH, or an ImageFolder root/<class>/*.png")
    p.add_argument("--img-size", type=int, default=d.img_size,
                   help=f"input size, multiple of 32, >= 64 (default {d.img_size})")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"default {d.epochs}")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"global batch size (default {d.batch_size})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"AdamW peak learning rate (default {d.lr})")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs)
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing)
    p.add_argument("--hflip", action=argparse.BooleanOptionalAction, default=None,
                   help="random horizontal flips (default: off for digits, on otherwise)")
    p.add_argument("--ema-decay", type=float, default=d.ema_decay, help="EMA of weights, e.g. 0.998 (default 0: off)")
    p.add_argument("--teacher", default=None, help="teacher checkpoint for knowledge distillation")
    p.add_argument("--distill-alpha", type=float, default=d.distill_alpha)
    p.add_argument("--distill-temp", type=float, default=d.distill_temp)
    p.add_argument("--act", default=None, help="activation of edgevit models (relu, gelu, hardswish, relu6)")
    p.add_argument("--attention", default=None, help="attention layout of edgevit models (bounded, blockdiag, heads)")
    p.add_argument("--baseline", default=None,
                   help="also train this model with the identical recipe, e.g. mobilenetv2_100")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--split-seed", type=int, default=d.split_seed, help="seed of the train/val/test split")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: all cores)")
    p.add_argument("--out", default=None, help="run folder (default runs/<model>-<data>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def config_from_args(args: argparse.Namespace):
    from edgevit.train.config import TrainConfig

    data_name = "digits" if args.data == "digits" else Path(args.data.split(":")[-1]).name or "data"
    return TrainConfig(
        out=args.out or f"runs/{args.model}-{data_name}", model=args.model,
        model_kwargs={k: v for k, v in (("act", args.act), ("attention", args.attention)) if v},
        data=args.data, img_size=args.img_size,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
        warmup_epochs=args.warmup_epochs, label_smoothing=args.label_smoothing, hflip=args.hflip,
        ema_decay=args.ema_decay, teacher=args.teacher, distill_alpha=args.distill_alpha,
        distill_temp=args.distill_temp, seed=args.seed, split_seed=args.split_seed, baseline=args.baseline,
        threads=args.threads, progress=not args.no_progress,
    )


def run(args: argparse.Namespace) -> int:
    from contract.files import check_writable

    cfg = config_from_args(args)
    if cfg.model_kwargs and not cfg.model.startswith("edgevit"):
        raise ValueError(f"--act and --attention apply to edgevit models only, not {cfg.model}")
    from edgevit.registry import create_model

    create_model(cfg.model, num_classes=2, img_size=cfg.img_size, **cfg.model_kwargs)  # options valid?
    check_writable(cfg.out)
    from edgevit.train.engine import train

    result = train(cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        for role, m in result.items():
            print(f"{role:>8}: {m['name']:<16} test acc {m['test_acc']:.4f}  val acc {m['val_acc']:.4f}  "
                  f"{m['params_m']:.2f} M params  {m['gmacs'] * 1e3:.1f} MMACs  {m['train_seconds']:.0f}s")
        print(f"checkpoint: {Path(cfg.out) / 'best.pt'}  metrics: {Path(cfg.out) / 'metrics.json'}")
    return 0
