"""Training configuration: a frozen dataclass that validates itself (nanoGPT-style commented defaults)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from contract.errors import UserError
from edgevit.registry import list_models
from edgevit.sizes import check_img_size

__all__ = ["TrainConfig"]

EMBEDDED = ("digits", "glyphs")   # data sets made in memory, no path (edgevit.data)
SEED_MAX = 2**32 - 1             # numpy's legacy generator (and so Optuna's samplers) take no larger seed
MAX_THREADS = 1024               # torch threads; far more (100000) exhausts memory in thread stacks: ENOMEM mid-import
_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "dict": (dict,),
          "str | None": (str, type(None)), "bool | None": (bool, type(None))}   # annotation -> accepted types


@dataclass(frozen=True)
class TrainConfig:
    out: str                                  # run folder: checkpoints, metrics.json, log.csv
    model: str = "edgevit_xs"                 # any name from `edgevit info`
    model_kwargs: dict = field(default_factory=dict)  # constructor options, e.g. {"act": "gelu"}
    data: str = "digits"                      # "digits" or "glyphs" (embedded), "cifar10:PATH" or an ImageFolder path
    img_size: int = 64                        # multiple of 32, >= 64
    epochs: int = 15                          # edgevit_xs reaches 100% val on digits by ~epoch 9
    batch_size: int = 64                      # global batch (split across torchrun processes)
    lr: float = 2e-3                          # AdamW peak learning rate
    min_lr: float = 1e-5                      # end of the cosine schedule
    weight_decay: float = 0.05                # not applied to norms, biases, attention-bias tables
    warmup_epochs: float = 2.0                # linear warmup, then cosine
    label_smoothing: float = 0.1
    hflip: bool | None = None                 # None: off for digits (a flipped 2 is no 2), on otherwise
    ema_decay: float = 0.0                    # 0 disables the EMA of weights; e.g. 0.998
    teacher: str | None = None                # checkpoint of a teacher for knowledge distillation
    distill_alpha: float = 0.5                # weight of the distillation term
    distill_temp: float = 2.0                 # softmax temperature of the distillation term
    seed: int = 0                             # model init, batch order, augmentation
    split_seed: int = 0                       # train/val/test split (export reuses it)
    baseline: str | None = None               # also train this model with the identical recipe
    threads: int = 0                          # torch threads; 0 = all cores (divided among torchrun ranks)
    progress: bool = True

    def __post_init__(self):
        self._check_types()
        models = list_models()
        for name in filter(None, (self.model, self.baseline)):
            if name not in models:
                raise UserError(f"unknown model {name!r}; valid models: {', '.join(models)}")
        check_img_size(self.img_size)
        for option, ok, meaning in self._ranges():
            value = getattr(self, option)
            bad_float = isinstance(value, float) and not math.isfinite(value)
            if bad_float or not ok(value):
                raise UserError(f"--{option.replace('_', '-')} must be {meaning}, got {value}")
        if self.min_lr > self.lr:
            raise UserError(f"--lr ({self.lr}) must be at least the final lr min_lr ({self.min_lr})")
        if self.teacher is not None and not Path(self.teacher).is_file():
            raise UserError(f"teacher checkpoint {self.teacher} does not exist")
        if self.data not in EMBEDDED and not self.data.startswith("cifar10:") and not Path(self.data).is_dir():
            raise UserError(f"data folder {self.data} does not exist; use --data digits, glyphs, cifar10:PATH "
                            "or an ImageFolder path (root/<class>/*.png)")

    def _check_types(self) -> None:
        """Every field has its annotated type (a bool is no number): the values of a hand-edited checkpoint
        (--resume) or of an API call fail here, by name, not deep in training."""
        for f in fields(self):
            value, kinds = getattr(self, f.name), _TYPES[f.type]
            if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
                names = " or ".join("None" if k is type(None) else k.__name__ for k in kinds)
                raise UserError(f"--{f.name.replace('_', '-')} must be {names}, got {value!r}")

    @staticmethod
    def _ranges():
        """(field, check, what the check means); every float must also be finite."""
        return (
            ("epochs", lambda v: v >= 1, "a whole number >= 1"),
            ("batch_size", lambda v: v >= 2, "at least 2 (BatchNorm needs a batch)"),
            ("lr", lambda v: v > 0, "a finite number > 0"),
            ("min_lr", lambda v: v >= 0, "a finite number >= 0"),
            ("weight_decay", lambda v: v >= 0, "a finite number >= 0"),
            ("warmup_epochs", lambda v: v >= 0, "a finite number of epochs >= 0"),
            ("label_smoothing", lambda v: 0 <= v < 1, "in [0, 1)"),
            ("ema_decay", lambda v: 0 <= v < 1, "in [0, 1) (0 turns the EMA off)"),
            ("distill_alpha", lambda v: 0 <= v <= 1, "in [0, 1]"),
            ("distill_temp", lambda v: v > 0, "a finite number > 0"),
            ("seed", lambda v: 0 <= v <= SEED_MAX, f"a whole number from 0 to {SEED_MAX}"),
            ("split_seed", lambda v: 0 <= v <= SEED_MAX, f"a whole number from 0 to {SEED_MAX}"),
            ("threads", lambda v: 0 <= v <= MAX_THREADS, f"a whole number from 0 to {MAX_THREADS} (0 = all cores)"),
        )

    def use_hflip(self) -> bool:
        """Off for the embedded sets (a mirrored 2 or b is another class), on for photos."""
        return self.data not in EMBEDDED if self.hflip is None else self.hflip

    def as_dict(self) -> dict:
        return asdict(self)
