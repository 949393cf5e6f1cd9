"""`edgevit search`: an Optuna study over the family's design space under a device budget.

Each trial samples a design (search.space.CHOICES, Optuna's TPE sampler). Its int8 latency on every
budget profile is projected from the latency table in microseconds of computer time; a design over
budget is pruned there, untrained, with the reason kept on the trial. A design within budget gets a
short proxy training (`edgevit train`'s loop, ProxyRecipe) and its validation accuracy (validation
fonts; the training also reports its test-font accuracy, which the search never looks at) is
the trial's value. The study lives in a storage: by default a
journal file in the search folder (several processes on this machine may share it), or any database
URL Optuna takes (`--storage postgresql+psycopg://...`), so workers on many machines share one study.

Nothing is ever deleted: a search run again continues its study until it holds `trials` trained
designs. A trial interrupted by Ctrl-C or a crash is marked failed by Optuna, and its design is queued
again, so the next run retrains it (resuming its training folder from last.pt).
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from contract.errors import UserError
from contract.outputs import FolderBusy
from search.budget import Budget, project
from search.space import CHOICES, KNOWN, Design, design_from_params

__all__ = ["SearchConfig", "ProxyRecipe", "run_search", "open_study", "study_storage", "trained_designs",
           "train_references", "STUDY_FILE", "STUDY_NAME", "MAX_SAMPLED"]

STUDY_FILE = "study.journal"
STUDY_NAME = "edgevit-search"   # + a digest of the budget and the recipe: other settings, another study
MAX_SAMPLED = 200     # sampled designs per trained one before a run gives up (a budget almost nothing meets)


@dataclass(frozen=True)
class ProxyRecipe:
    data: str = "glyphs"          # validation fonts decide; the test fonts' accuracy is not looked at
    img_size: int = 64
    epochs: int = 6
    lr: float = 2e-3
    batch_size: int = 64
    threads: int = 1
    seed: int = 0


@dataclass(frozen=True)
class SearchConfig:
    out: Path
    budget: Budget = field(default_factory=Budget)
    recipe: ProxyRecipe = field(default_factory=ProxyRecipe)
    trials: int = 20              # trained designs the study should hold (over every run and worker)
    storage: str | None = None    # None: a journal file in `out`
    sampler_seed: int | None = None
    progress: bool = True
    int8_check: bool = True       # export each candidate whole (int8) before training it: the converter leaves
    #                               an attention BATCH_MATMUL in float for some layouts, and those do not ship

    def __post_init__(self):
        if self.trials < 1:
            raise UserError(f"--trials must be >= 1, got {self.trials}")
        if self.sampler_seed is not None and not 0 <= self.sampler_seed < 2 ** 32:
            raise UserError(f"--sampler-seed must be in [0, 2**32), got {self.sampler_seed}")
        _train_config(KNOWN["edgevit_xxs"], self.recipe, self.out / "trials" / "check")   # a bad recipe fails here,
        # not in every trial


def study_name(cfg: SearchConfig) -> str:
    """One study per budget and proxy recipe: workers with the same settings join it, a search with other
    settings in the same database gets its own (its trials would be judged by another budget)."""
    import hashlib
    import json

    key = json.dumps({"budget": asdict(cfg.budget), "recipe": asdict(cfg.recipe)}, sort_keys=True, default=list)
    return f"{STUDY_NAME}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def shown_url(url: str | None) -> str | None:
    """A storage URL as it may be printed or written down: its password replaced by ***."""
    from urllib.parse import urlsplit, urlunsplit

    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def study_storage(cfg: SearchConfig):
    """--storage's URL, or the journal file in the search folder."""
    if cfg.storage:
        return cfg.storage
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    _cut_torn_record(cfg.out / STUDY_FILE)
    try:
        return JournalStorage(JournalFileBackend(str(cfg.out / STUDY_FILE)))
    except ValueError as e:   # a line that is not JSON (a crash cut the last write): Optuna replays the file here
        raise _damaged(cfg, e) from None


def _damaged(cfg: SearchConfig, e: ValueError) -> UserError:
    return UserError(f"the study file {cfg.out / STUDY_FILE} is damaged ({e}); move it aside to start a new study "
                     "there, or choose another --out")


def _cut_torn_record(journal: Path) -> None:
    """A crash in the middle of a write leaves the journal's last record without its newline. Optuna skips such
    a line when it reads, then appends the next record to it, which damages the file for good. The torn bytes
    (never a whole record: each is written with its newline) go to <journal>.torn, and the journal ends at its
    last whole record."""
    from optuna.storages.journal import JournalFileSymlinkLock
    from optuna.storages.journal._file import get_lock_file

    if not journal.is_file():
        return
    with get_lock_file(JournalFileSymlinkLock(str(journal))):   # Optuna's own write lock: no worker is mid-write
        data = journal.read_bytes()
        if not data or data.endswith(b"\n"):
            return
        cut = data.rfind(b"\n") + 1
        with open(journal.with_name(journal.name + ".torn"), "ab") as f:
            f.write(data[cut:] + b"\n")
            f.flush()
            os.fsync(f.fileno())
        with open(journal, "r+b") as f:
            f.truncate(cut)
    print(f"edgevit search: {journal.name} ended in a record a crash cut short ({len(data) - cut} bytes); "
          f"kept it in {journal.name}.torn and continued from the last whole record")


def _folder_study_name(cfg: SearchConfig, storage) -> str:
    """The study this folder continues: the one named for its settings; in a folder's own journal made before the
    name carried the settings' digest, the only study it holds (its search.json already pins the settings)."""
    import optuna

    name = study_name(cfg)
    if cfg.storage:
        return name
    names = optuna.get_all_study_names(storage)
    return names[0] if name not in names and len(names) == 1 else name


def open_study(cfg: SearchConfig):
    import optuna

    # not "Using an existing study" on every load; never louder than the caller set (the CLI: errors only, so
    # an interrupted trial is not logged with the interrupt's traceback)
    optuna.logging.set_verbosity(max(optuna.logging.get_verbosity(), optuna.logging.WARNING))
    storage = study_storage(cfg)
    sampler = optuna.samplers.TPESampler(seed=cfg.sampler_seed, n_startup_trials=8)
    for attempt in range(5):
        try:
            return optuna.create_study(study_name=_folder_study_name(cfg, storage), storage=storage,
                                       direction="maximize", sampler=sampler, load_if_exists=True)
        except Exception as e:   # noqa: BLE001 - a database that cannot be reached raises many types
            if not cfg.storage:
                if isinstance(e, ValueError):   # a journal line that is not JSON: a damaged file
                    raise _damaged(cfg, e) from None
                raise
            # two workers creating the schema of a new database at once: one of them loses the race, once
            if "UniqueViolation" in type(e).__name__ + str(e) and attempt < 4:
                time.sleep(1.0 + attempt)
                continue
            raise UserError(f"cannot open the study at --storage {shown_url(cfg.storage)}: "
                            f"{str(e).splitlines()[0][:200]}") \
                from None
    raise AssertionError("unreachable")


def _trained(study) -> list:
    """Completed trials, one per design (a design sampled again is the same network: it counts once)."""
    from optuna.trial import TrialState

    seen, out = set(), []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.user_attrs.get("design") not in seen:
            seen.add(t.user_attrs.get("design"))
            out.append(t)
    return out


def _fail_dead_workers(study) -> None:
    """A trial left RUNNING by a worker of this machine that no longer runs (killed, machine crash) is failed,
    so it can be queued again; another machine's running trials are left to their workers."""
    from optuna.trial import TrialState

    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker_host, _, pid = str(t.user_attrs.get("worker", "")).rpartition(":")
        if worker_host == host and pid.isdigit() and not _alive(int(pid)):
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)   # noqa: SLF001 - no public API


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _requeue_interrupted(study) -> int:
    """Designs whose trial failed (Ctrl-C, a crash) and that no trial finished or retried since: queued once
    more (the retry names the trial it retries)."""
    from optuna.trial import TrialState

    _fail_dead_workers(study)
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    done = {t.user_attrs.get("design") for t in trials
            if t.state in (TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING)}
    again = 0
    for t in trials:
        design = t.user_attrs.get("design")
        if t.state == TrialState.FAIL and design and design not in done and t.number not in retried:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
            done.add(design)
            again += 1
    return again


def _seed_known(study) -> None:
    """The family members the space contains (edgevit_xxs, edgevit_xs) are the first trials of a new study: a
    known point on the front from the start (or, over budget, a recorded reason why not)."""
    if study.get_trials(deepcopy=False):
        return
    for name, design in KNOWN.items():
        study.enqueue_trial(design.params(), user_attrs={"known_as": name})


def _objective(cfg: SearchConfig, splits, table: dict, worker: str):
    import optuna

    def objective(trial: optuna.Trial) -> float:
        # the worker first: a RUNNING trial that names a design always names its worker, so a dead worker's
        # design is never locked out (_fail_dead_workers)
        trial.set_user_attr("worker", worker)
        params = {name: trial.suggest_categorical(name, choices) for name, choices in CHOICES.items()}
        design = design_from_params(params)
        trial.set_user_attr("design", design.name)
        latency = project(design, cfg.budget, table)
        trial.set_user_attr("latency", latency)
        over = [p for p, row in latency.items() if not row["within"]]
        if over:
            trial.set_user_attr("rejected", "over budget on " + ", ".join(
                f"{p} ({latency[p]['ratio']:.2f}x, {latency[p]['ms']:.1f} ms)" for p in over))
            raise optuna.TrialPruned()
        for t in _trained(trial.study):
            if t.user_attrs.get("design") == design.name:   # sampled again: the same network, the same value
                trial.set_user_attr("same_as", t.number)
                return t.value
        not_int8 = _not_int8(design, cfg) if cfg.int8_check else None
        if not_int8:
            trial.set_user_attr("rejected", f"not full int8: {not_int8}")
            raise optuna.TrialPruned()
        if _in_training_elsewhere(trial, design):
            trial.set_user_attr("rejected", "being trained by another worker of this study")
            raise optuna.TrialPruned()
        metrics = proxy_train(design, cfg.recipe, cfg.out / "trials" / design.name, splits)
        trial.set_user_attr("train_seconds", metrics["train_seconds"])
        trial.set_user_attr("train_acc", metrics.get("train_acc"))
        return metrics["val_acc"]

    return objective


def _not_int8(design: Design, cfg: SearchConfig) -> str | None:
    """Why the design cannot be exported as full int8 at the proxy and the budget input sizes (None: it can).
    Exported with random weights into int8-check/ (kept: a design is checked once)."""
    from export.tflite_convert import NotConvertibleError
    from search.parts import export_design
    from search.table import GLYPH_CLASSES

    for img in sorted({cfg.recipe.img_size, cfg.budget.img}):
        try:
            export_design(design, img, GLYPH_CLASSES, cfg.out / "int8-check" / f"{img}-{design.name}")
        except NotConvertibleError as e:
            return f"{e} at {img}x{img}"
    return None


def _in_training_elsewhere(trial, design: Design) -> bool:
    from optuna.trial import TrialState

    return any(t.number != trial.number and t.user_attrs.get("design") == design.name
               for t in trial.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def proxy_train(design_or_model: Design | str, recipe: ProxyRecipe, out: Path, splits) -> dict:
    """Trains a design (or a registered model by name) with the proxy recipe into `out`; an interrupted
    run there is resumed. Returns its metrics (val_acc decides; nothing else is read)."""
    from edgevit.train.engine import RUN_FILES, train

    cfg = _train_config(design_or_model, recipe, out)
    resume = (out / "last.pt").is_file()
    held = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    foreign = [n for n in held if n not in RUN_FILES and not n.startswith(".")]
    if foreign:
        raise UserError(f"{out} holds files the search did not write ({', '.join(foreign[:4])}); move them out of "
                        "that folder and run the search again")
    # a training interrupted before its first checkpoint left only its own files: start it over
    return train(cfg, splits, resume=resume, force=bool(held) and not resume)["model"]


def _train_config(design_or_model: Design | str, recipe: ProxyRecipe, out: Path):
    from edgevit.train.config import TrainConfig

    if isinstance(design_or_model, Design):
        model, kwargs = "edgevit_xs", {k: list(v) if isinstance(v, tuple) else v
                                       for k, v in design_or_model.model_kwargs().items()}
    else:
        model, kwargs = design_or_model, {}
    try:
        return TrainConfig(out=str(out), model=model, model_kwargs=kwargs, data=recipe.data, img_size=recipe.img_size,
                           epochs=recipe.epochs, lr=recipe.lr, batch_size=recipe.batch_size, threads=recipe.threads,
                           seed=recipe.seed, progress=False)
    except ValueError as e:
        raise UserError(f"proxy training: {e}") from None


class _Progress:
    """Trained designs of this study out of the target, best validation accuracy, time left (tqdm)."""

    def __init__(self, cfg: SearchConfig, study):
        from tqdm import tqdm

        self.cfg, self.t0, self.start = cfg, time.perf_counter(), len(_trained(study))
        self.bar = tqdm(total=cfg.trials, initial=min(self.start, cfg.trials), unit="trained", disable=not cfg.progress,
                        dynamic_ncols=True, desc="search")
        self.rejected = 0

    def __call__(self, study, trial) -> None:
        from optuna.trial import TrialState

        done = len(_trained(study))
        self.rejected += trial.state == TrialState.PRUNED
        self.bar.n = min(done, self.cfg.trials)
        best = f"{100 * study.best_value:.1f}%" if done else "-"
        self.bar.set_postfix_str(f"best val {best}, {self.rejected} rejected untrained")
        self.bar.refresh()
        if done >= self.cfg.trials:
            study.stop()

    def close(self) -> None:
        self.bar.close()


def run_search(cfg: SearchConfig, *, on_trial=None) -> dict:
    """Runs (or continues) the study until it holds cfg.trials trained designs. `on_trial(study)` is called
    after every trial (the CLI rewrites trials.csv and pareto.png there). Returns a summary."""
    from edgevit.data import load_dataset
    from search.table import load_table

    cfg.out.mkdir(parents=True, exist_ok=True)
    table = load_table()
    study = open_study(cfg)
    _seed_known(study)
    requeued = _requeue_interrupted(study)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    splits = load_dataset(cfg.recipe.data, cfg.recipe.img_size, seed=0)
    progress = _Progress(cfg, study)
    callbacks = [progress] + ([lambda s, t: on_trial(s)] if on_trial else [])
    try:
        left = cfg.trials - len(_trained(study))
        if left > 0:
            study.optimize(_objective(cfg, splits, table, worker), n_trials=MAX_SAMPLED * left, callbacks=callbacks,
                           gc_after_trial=True)
    finally:
        progress.close()
        if on_trial:
            on_trial(study)
    trained = _trained(study)
    if len(trained) < cfg.trials:
        raise UserError(f"only {len(trained)} of {cfg.trials} sampled designs fit the budget "
                        f"({cfg.budget.describe()}) after {MAX_SAMPLED} tries per trial; loosen the budget")
    return {"study": study, "trained": len(trained), "requeued": requeued, "config": _plain(asdict(cfg))}


def trained_designs(study) -> list[dict]:
    """Every trained trial: number, design, validation accuracy, projected latency per profile."""
    return [{"trial": t.number, "design": t.user_attrs.get("design"), "val_acc": t.value, "params": t.params,
             "latency": t.user_attrs.get("latency", {})} for t in _trained(study)]


def train_references(cfg: SearchConfig, names: tuple[str, ...]) -> dict:
    """The reference models trained with the same proxy recipe (references/<name>/, resumed when interrupted,
    reused when finished): {name: {"val_acc", "latency"}}. A reference another worker is training is left to
    it and read when it has finished."""
    from edgevit.data import load_dataset
    from search.table import load_table

    if not names:
        return {}
    table, splits, out = load_table(), load_dataset(cfg.recipe.data, cfg.recipe.img_size, seed=0), {}
    todo, told = list(names), set()
    while todo:
        name = todo.pop(0)
        try:
            metrics = proxy_train(name, cfg.recipe, cfg.out / "references" / name, splits)
        except FolderBusy:   # another worker is training it: come back to it
            if name not in told:
                told.add(name)
                print(f"edgevit search: reference {name} is being trained by another worker of this search; "
                      "waiting for it (Ctrl-C stops this worker, the other goes on)", flush=True)
            todo.append(name)
            time.sleep(5 if len(todo) == 1 else 0)
            continue
        out[name] = {"val_acc": metrics["val_acc"], "latency": project(name, cfg.budget, table)}
    return {name: out[name] for name in names}


def _plain(d):
    if isinstance(d, dict):
        return {k: _plain(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_plain(v) for v in d]
    return str(d) if isinstance(d, Path) else d
