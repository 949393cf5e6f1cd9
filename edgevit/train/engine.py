"""The training loop: AdamW + warmup/cosine, label smoothing, batch augmentation, optional EMA and
knowledge distillation, best/last checkpoints, per-epoch CSV log and metrics.json.

Runs single-process or under `torchrun` (DistributedDataParallel over gloo on CPU): every rank
draws the same seeded batch order and takes its slice of each global batch.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from contract.errors import UserError
from contract.files import atomic_write, write_json
from contract.outputs import (
    InPlace,
    deferred_signals,
    folder_lock,
    recover_output,
    resolve_out,
    written_in_place,
)
from edgevit.checkpoint import load_checkpoint, save_checkpoint
from edgevit.data import ImageSplits, load_dataset
from edgevit.data.splits import SPLIT_FRACTIONS
from edgevit.info import count_macs, count_params
from edgevit.registry import create_model
from edgevit.train import distributed as dist_utils
from edgevit.train.augment import augment_batch
from edgevit.train.config import TrainConfig
from edgevit.train.ema import ModelEma

__all__ = ["train", "evaluate", "normalize", "RUN_FILES"]

EPOCH_SEED_STRIDE = 100_003   # per-epoch seeds: seed * stride + epoch never repeats across epochs
RUN_FILES = ("best.pt", "last.pt", "log.csv", "metrics.json", "baseline")   # what a run writes into its folder
OUTPUT_KIND = "train"          # what contract.outputs records as the writer of a run's files
_MODEL_FILES = ("best.pt", "last.pt", "log.csv", "metrics.json")
RESUME_STATE = ("optimizer", "step", "torch_rng", "epoch", "best_key", "best_epoch", "log_rows", "seconds")
EXPECTED = (*_MODEL_FILES, *(f"baseline/{n}" for n in _MODEL_FILES))   # files a run may write


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Raw 0..255 pixels (B, 3, H, W) -> (x/255 - mean)/std, the model's training input."""
    return (x / 255.0 - mean) / std


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in 0..255."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float()


@torch.no_grad()
def evaluate(model: nn.Module, images: np.ndarray, labels: np.ndarray, mean, std, *,
             batch_size: int = 256) -> dict[str, float]:
    model.eval()
    mean_t, std_t = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    correct, loss = 0, 0.0
    for i in range(0, len(images), batch_size):
        x = normalize(to_tensor(images[i:i + batch_size]), mean_t, std_t)
        y = torch.from_numpy(labels[i:i + batch_size])
        logits = model(x)
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
    return {"loss": loss / len(images), "acc": correct / len(images)}


def _lr_at(step: int, total: int, warmup: int, cfg: TrainConfig) -> float:
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * t))


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 or "attention_biases" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _loss(logits: torch.Tensor, y: torch.Tensor, teacher_logits: torch.Tensor | None, cfg: TrainConfig):
    ce = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
    if teacher_logits is None:
        return ce
    t = cfg.distill_temp
    kd = F.kl_div(F.log_softmax(logits / t, 1), F.log_softmax(teacher_logits / t, 1),
                  reduction="batchmean", log_target=True) * t * t
    return (1 - cfg.distill_alpha) * ce + cfg.distill_alpha * kd


def _load_teacher(cfg: TrainConfig, splits: ImageSplits) -> nn.Module | None:
    if cfg.teacher is None:
        return None
    ckpt = load_checkpoint(cfg.teacher)
    if tuple(ckpt.class_names) != tuple(splits.class_names) or ckpt.img_size != cfg.img_size:
        raise UserError(f"teacher {cfg.teacher} was trained on other classes or img size "
                        f"({ckpt.img_size}px, {len(ckpt.class_names)} classes); distill only between matching models")
    teacher = ckpt.build_model()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def train(cfg: TrainConfig, splits: ImageSplits | None = None, *, resume: bool = False, force: bool = False) -> dict:
    """Train `cfg.model` (and `cfg.baseline` with the identical recipe) into `cfg.out`. Returns the
    metrics written to `cfg.out/metrics.json`. An existing run folder is refused unless `resume`
    (continue from last.pt: weights, optimizer, EMA, schedule step, epoch, RNG) or `force` (start over:
    the earlier run's own files, as its manifest lists them, are replaced; anything else is kept, and the
    earlier run comes back if the new one fails or is interrupted before its first checkpoint)."""
    ctx = dist_utils.setup(cfg.threads)
    out = resolve_out(cfg.out)
    if ctx.is_main:
        # locked before anything is checked or moved: a run in progress keeps its files
        with folder_lock(out, what="training run"):
            recover_output(out, what="training run")   # a --force run killed before it finished: the earlier run back
            if resume and not (out / "last.pt").is_file():
                raise UserError(f"nothing to resume: {out / 'last.pt'} does not exist; start the run without --resume")
            with written_in_place(out, kind=OUTPUT_KIND, force=force, resume=resume, expect=EXPECTED) as writer:
                result = _train_all(cfg, splits, out, ctx, resume=resume, writer=writer)
    else:
        result = _train_all(cfg, splits, out, ctx, resume=resume, writer=None)
    dist_utils.teardown(ctx)
    return result


def _train_all(cfg: TrainConfig, splits: ImageSplits | None, out: Path, ctx: dist_utils.Context, *, resume: bool,
               writer: InPlace | None) -> dict:
    splits = splits or load_dataset(cfg.data, cfg.img_size, seed=cfg.split_seed)
    if splits.skipped and ctx.is_main:
        tqdm.write(f"note: skipped {len(splits.skipped)} file(s) of {cfg.data} that are not regular files (a FIFO, "
                   f"device or socket): {', '.join(splits.skipped[:3])}{' ...' if len(splits.skipped) > 3 else ''}")
    result = {"model": _train_one(cfg, splits, out, ctx, resume=resume, writer=writer)}
    if cfg.baseline:
        base_cfg = replace(cfg, model=cfg.baseline, model_kwargs={}, baseline=None)
        result["baseline"] = _train_one(base_cfg, splits, out / "baseline", ctx, resume=resume, writer=writer)
    if writer is not None:
        with deferred_signals():
            write_json(out / "metrics.json", result, before_replace=writer.pending(out / "metrics.json"))
            writer.record(out / "metrics.json")
    return result


@dataclass
class _Run:
    """One model's training state."""
    model: nn.Module
    ddp_model: nn.Module
    ema: ModelEma | None
    opt: torch.optim.Optimizer
    teacher: nn.Module | None
    train_x: torch.Tensor
    train_y: torch.Tensor
    mean_t: torch.Tensor
    std_t: torch.Tensor
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    g_order: torch.Generator
    g_aug: torch.Generator
    ckpt_meta: dict
    info: dict
    step: int = 0

    @property
    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model


def _setup(cfg: TrainConfig, splits: ImageSplits, ctx: dist_utils.Context) -> _Run:
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model, num_classes=splits.num_classes, img_size=cfg.img_size, **cfg.model_kwargs)
    train_x = to_tensor(splits.train_x)
    steps_per_epoch = len(train_x) // cfg.batch_size
    if steps_per_epoch < 1:
        raise UserError(f"the train split has {len(train_x)} images, fewer than one batch of {cfg.batch_size}")
    return _Run(
        model=model, ddp_model=dist_utils.wrap(model, ctx),
        ema=ModelEma(model, cfg.ema_decay) if cfg.ema_decay > 0 else None,
        opt=torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr), teacher=_load_teacher(cfg, splits),
        train_x=train_x, train_y=torch.from_numpy(splits.train_y),
        mean_t=torch.tensor(splits.mean).view(1, 3, 1, 1), std_t=torch.tensor(splits.std).view(1, 3, 1, 1),
        steps_per_epoch=steps_per_epoch, total_steps=steps_per_epoch * cfg.epochs,
        warmup_steps=int(cfg.warmup_epochs * steps_per_epoch),
        g_order=torch.Generator(), g_aug=torch.Generator(),   # seeded per epoch in _train_epoch
        ckpt_meta=dict(img_size=cfg.img_size, mean=splits.mean, std=splits.std, class_names=splits.class_names,
                       dataset={"name": splits.name, "spec": cfg.data, "split_seed": splits.split_seed,
                                "fractions": list(SPLIT_FRACTIONS), "skipped_files": len(splits.skipped)},
                       train_config=cfg.as_dict()),
        info={"name": cfg.model, "params_m": count_params(model) / 1e6, "gmacs": count_macs(model, cfg.img_size) / 1e9},
    )


def _train_epoch(cfg: TrainConfig, run: _Run, epoch: int, ctx: dist_utils.Context) -> dict:
    """One pass over the train split; returns the epoch's train loss and accuracy. The batch order and
    the augmentation draws are seeded per epoch, so a resumed run draws what the uninterrupted one would."""
    run.g_order.manual_seed(cfg.seed * EPOCH_SEED_STRIDE + epoch)                      # same on every rank
    run.g_aug.manual_seed((cfg.seed * 1000 + ctx.rank) * EPOCH_SEED_STRIDE + epoch)  # each rank its own draws
    run.ddp_model.train()
    perm = torch.randperm(len(run.train_x), generator=run.g_order)
    # disable=None: bars on a terminal only; logs and CI get the one-line epoch summary
    bar = tqdm(range(run.steps_per_epoch), desc=f"{cfg.model} {epoch}/{cfg.epochs}", leave=False,
               disable=None if (cfg.progress and ctx.is_main) else True, dynamic_ncols=True)
    seen, correct, loss_sum = 0, 0, 0.0
    for b in bar:
        idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size][ctx.rank::ctx.world_size]
        x = normalize(augment_batch(run.train_x[idx], run.g_aug, hflip=cfg.use_hflip()), run.mean_t, run.std_t)
        y = run.train_y[idx]
        for group in run.opt.param_groups:
            group["lr"] = _lr_at(run.step, run.total_steps, run.warmup_steps, cfg)
        logits = run.ddp_model(x)
        with torch.no_grad():
            t_logits = run.teacher(x) if run.teacher is not None else None
        loss = _loss(logits, y, t_logits, cfg)
        if not torch.isfinite(loss):
            raise UserError(f"training diverged: the loss is {loss.item()} at epoch {epoch}, step {run.step} "
                            f"(lr {run.opt.param_groups[0]['lr']:.3g}); lower --lr or --distill-temp and retrain")
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        run.opt.step()
        if run.ema is not None:
            run.ema.update(run.model)
        run.step += 1
        seen += len(y)
        correct += (logits.argmax(1) == y).sum().item()
        loss_sum += loss.item() * len(y)
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
    return {"train_loss": loss_sum / seen, "train_acc": correct / seen}


@dataclass
class _Progress:
    """Where a run stands after an epoch: everything --resume needs besides the weights."""
    epoch: int = 0
    best_key: tuple = (-1.0, 0.0)      # (val acc, -val loss) of best.pt
    best_epoch: int = 0
    log_rows: list = field(default_factory=list)
    seconds: float = 0.0               # training time before this process

    def state(self, run: _Run) -> dict:
        return {"epoch": self.epoch, "step": run.step, "best_key": list(self.best_key), "best_epoch": self.best_epoch,
                "log_rows": self.log_rows, "seconds": self.seconds, "optimizer": run.opt.state_dict(),
                "raw_model": run.model.state_dict() if run.ema is not None else None,
                "torch_rng": torch.get_rng_state()}


def _resume(out: Path, run: _Run) -> _Progress:
    """Loads out/last.pt into `run` (weights, EMA, optimizer, step) and returns where it stood."""
    ckpt = load_checkpoint(out / "last.pt")
    st = ckpt.train_state
    if not st:
        raise UserError(f"{out / 'last.pt'} holds no training state to resume from (written by an older edgevit); "
                        "start over with --force")
    missing = [k for k in RESUME_STATE if k not in st]
    if missing:
        raise UserError(f"{out / 'last.pt'}: its training state has no {', '.join(missing)} (the file was edited or "
                        "written by another version); start over with --force")
    try:
        weights = st["raw_model"] if st.get("raw_model") is not None else ckpt.state_dict
        run.model.load_state_dict(weights)
        if run.ema is not None:
            run.ema.module.load_state_dict(ckpt.state_dict)
        run.opt.load_state_dict(st["optimizer"])
        run.step = int(st["step"])
        torch.set_rng_state(st["torch_rng"])
        return _Progress(epoch=int(st["epoch"]), best_key=tuple(st["best_key"]), best_epoch=int(st["best_epoch"]),
                         log_rows=list(st["log_rows"]), seconds=float(st["seconds"]))
    except (KeyError, TypeError, ValueError, RuntimeError) as e:   # the state does not fit this run's model
        reason = " ".join(str(e).split())[:160]
        raise UserError(f"{out / 'last.pt'}: its training state does not fit the run ({type(e).__name__}: "
                        f"{reason}); the file was edited or damaged: start over with --force") from None


def _train_one(cfg: TrainConfig, splits: ImageSplits, out: Path, ctx: dist_utils.Context, *,
               resume: bool = False, writer: InPlace | None = None) -> dict:
    run = _setup(cfg, splits, ctx)
    # finished only by a metrics.json this run wrote (--resume --force over a hand-edited one trains or tests again)
    done = _finished_metrics(out, cfg) if resume and (writer is None or writer.owns(out / "metrics.json")) else None
    if done is not None:
        return done
    prog = _resume(out, run) if resume and (out / "last.pt").is_file() else _Progress()
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        if prog.epoch:
            tqdm.write(f"{cfg.model}: resuming {out} after epoch {prog.epoch}/{cfg.epochs}")
    t0 = time.perf_counter() - prog.seconds
    for epoch in range(prog.epoch + 1, cfg.epochs + 1):
        train_stats = _train_epoch(cfg, run, epoch, ctx)
        dist_utils.sync_buffers(run.model, ctx)
        val = evaluate(run.eval_model, splits.val_x, splits.val_y, splits.mean, splits.std)
        if not math.isfinite(val["loss"]):
            raise UserError(f"training diverged: the validation loss is {val['loss']} after epoch {epoch}; "
                            "lower --lr and retrain (best.pt keeps the last finite epoch)")
        row = {"epoch": epoch, "lr": run.opt.param_groups[0]["lr"], **train_stats, "val_loss": val["loss"],
               "val_acc": val["acc"], "seconds": time.perf_counter() - t0}
        prog.log_rows.append(row)
        improved = (val["acc"], -val["loss"]) > prog.best_key  # ties on accuracy go to the lower loss
        if improved:
            prog.best_key, prog.best_epoch = (val["acc"], -val["loss"]), epoch
        prog.epoch, prog.seconds = epoch, row["seconds"]
        if writer is not None:
            _end_epoch(cfg, out, run, prog, row, improved, writer)
    best_acc = prog.best_key[0]
    metrics = dict(run.info, epochs=cfg.epochs, best_epoch=prog.best_epoch, val_acc=best_acc,
                   train_seconds=time.perf_counter() - t0, ddp=dist_utils.weight_agreement(run.model, ctx))
    if writer is not None:
        _finish(cfg, splits, out, run, metrics, writer)
    return metrics


def _end_epoch(cfg: TrainConfig, out: Path, run: _Run, prog: _Progress, row: dict, improved: bool,
               writer: InPlace) -> None:
    tqdm.write(f"{cfg.model} epoch {row['epoch']:3d}/{cfg.epochs}  loss {row['train_loss']:.3f}  "
               f"train acc {row['train_acc']:.3f}  val acc {row['val_acc']:.3f}  ({row['seconds']:.0f}s)")
    epoch_metrics = {"epoch": row["epoch"], "val_acc": row["val_acc"]}
    with deferred_signals() as hold:   # a Ctrl-C here waits: the epoch's files are written and recorded together
        # each file is listed in the run's manifest just before it replaces the one before (InPlace.pending):
        # a kill between the two leaves either file the run's own
        _write_csv(out / "log.csv", prog.log_rows, before_replace=_pending(writer, out / "log.csv"))
        if improved:
            save_checkpoint(out / "best.pt", run.eval_model, metrics=epoch_metrics, **run.ckpt_meta,
                            before_replace=_pending(writer, out / "best.pt"))
        # last.pt last: once it names epoch e, best.pt and log.csv already hold epoch e too
        save_checkpoint(out / "last.pt", run.eval_model, metrics=epoch_metrics, train_state=prog.state(run),
                        **run.ckpt_meta, before_replace=_pending(writer, out / "last.pt"))
        writer.record(*(out / n for n in ("log.csv", "best.pt", "last.pt") if (out / n).is_file()))
        if not hold.held:   # interrupted before this first checkpoint was whole: the earlier run comes back
            writer.checkpointed()


def _finished_metrics(out: Path, cfg: TrainConfig) -> dict | None:
    """The metrics of a run in `out` that already finished all its epochs (resume skips it)."""
    try:
        metrics = json.loads((out / "metrics.json").read_text())["model"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    ok = isinstance(metrics, dict) and metrics.get("epochs") == cfg.epochs and "test_acc" in metrics
    return metrics if ok and metrics.get("name") == cfg.model else None


def _finish(cfg: TrainConfig, splits: ImageSplits, out: Path, run: _Run, metrics: dict, writer: InPlace) -> None:
    """Test accuracy of best.pt (and of the last epoch), written into best.pt and metrics.json."""
    best = load_checkpoint(out / "best.pt")
    best_model = best.build_model()
    test = evaluate(best_model, splits.test_x, splits.test_y, splits.mean, splits.std)
    last = evaluate(run.eval_model, splits.test_x, splits.test_y, splits.mean, splits.std)
    metrics.update(test_acc=test["acc"], test_loss=test["loss"], last_test_acc=last["acc"])
    with deferred_signals():
        save_checkpoint(out / "best.pt", best_model, metrics=metrics, **run.ckpt_meta,   # self-describing best.pt
                        before_replace=_pending(writer, out / "best.pt"))
        write_json(out / "metrics.json", {"model": metrics}, before_replace=_pending(writer, out / "metrics.json"))
        writer.record(out / "best.pt", out / "metrics.json")
    tqdm.write(f"{cfg.model}: best val acc {metrics['val_acc']:.4f} (epoch {metrics['best_epoch']}), "
               f"test acc {metrics['test_acc']:.4f}, {metrics['train_seconds']:.0f}s -> {out / 'best.pt'}")


def _pending(writer: InPlace | None, path: Path):
    return None if writer is None else writer.pending(path)


def _write_csv(path: Path, rows: list[dict], *, before_replace=None) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    atomic_write(path, write, before_replace=before_replace)
