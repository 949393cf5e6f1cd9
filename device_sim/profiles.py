"""Device profiles: TOML files (device_sim/profiles/*.toml or a user's path) validated on load into
frozen dataclasses. [device] describes the target: its core (device_sim.arm.cores, or "host" for
no projection: the device is the machine the simulator runs on), clock and the cores the app may use;
the simulator projects the model's latency on it (device_sim.arm.projection). Unknown sections or
keys, out-of-range and non-finite values are errors, never ignored. The [budgets] section takes
`latency_percentile` plus one limit per registered budget (device_sim.budgets); the budgets marked
required must be set.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from contract.errors import UserError
from contract.files import path_problem
from contract.runtime import MAX_THREADS
from device_sim.budgets import BUDGETS

__all__ = ["DeviceProfile", "load_profile", "check_override", "builtin_profiles", "PROFILE_DIR", "DROP_POLICIES"]

PROFILE_DIR = Path(__file__).with_name("profiles")
HOST_CORE = "host"
DROP_POLICIES = ("latest", "queue")


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    description: str
    camera_width: int
    camera_height: int
    fps: float
    core: str                   # a core of device_sim.arm.cores, or "host" (no projection)
    clock_ghz: float | None     # the core's clock (required unless core = "host")
    threads: int                # cores the app may use (the runtime's threads)
    drop_policy: str            # "latest" or "queue"
    queue_size: int
    latency_percentile: float
    budgets: dict = field(default_factory=dict)   # budget key -> limit, for every budget this profile sets
    source: str = ""
    inference_ms: float | None = None   # what-if: the device's inference takes this long (no projection)

    @property
    def projected(self) -> bool:
        return self.core != HOST_CORE or self.inference_ms is not None

    @property
    def frame_period_ms(self) -> float:
        return 1000.0 / self.fps

    @property
    def deadline_ms(self) -> float:
        """A frame's deadline: the latency budget, or one frame period when the profile sets none."""
        return self.budgets.get("latency_ms", self.frame_period_ms)

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _core_names() -> tuple[str, ...]:
    from device_sim.arm.cores import CORES

    return (*CORES, HOST_CORE)


def _finite(check):
    return lambda v: math.isfinite(v) and check(v)


# section -> key -> (field name, type, check, what the check means)
_FIXED = {
    "": {"name": ("name", str, lambda v: bool(v.strip()), "a non-empty string"),
         "description": ("description", str, lambda v: True, "a string")},
    "camera": {"width": ("camera_width", int, lambda v: 16 <= v <= 8192, "16..8192"),
               "height": ("camera_height", int, lambda v: 16 <= v <= 8192, "16..8192"),
               "fps": ("fps", float, _finite(lambda v: 0.001 <= v <= 240), ">= 0.001 and <= 240")},
    "device": {"core": ("core", str, lambda v: v in _core_names(), "one of " + ", ".join(_core_names())),
               "clock_ghz": ("clock_ghz", float, _finite(lambda v: 0.1 <= v <= 6.0), "0.1..6.0 GHz"),
               "threads": ("threads", int, lambda v: 1 <= v <= MAX_THREADS, f"1..{MAX_THREADS}"),
               "inference_ms": ("inference_ms", float, _finite(lambda v: 0 < v <= 60_000), "> 0 and <= 60000 ms")},
    "pipeline": {"drop_policy": ("drop_policy", str, lambda v: v in DROP_POLICIES, " or ".join(DROP_POLICIES)),
                 "queue_size": ("queue_size", int, lambda v: 1 <= v <= 1000, "1..1000")},
    "budgets": {"latency_percentile": ("latency_percentile", float, _finite(lambda v: 50 <= v <= 100), "50..100")},
}
_OPTIONAL = {"description": "", "drop_policy": "latest", "queue_size": 4, "latency_percentile": 95.0,
             "clock_ghz": None, "inference_ms": None}
_LIMIT = (float, _finite(lambda v: v >= 0), "a finite number >= 0")


def _schema() -> dict:
    """The fixed keys plus one [budgets] key per registered budget (read at load time, so budgets
    registered by any imported module count)."""
    budgets = {key: (f"budget:{key}", *_LIMIT) for key in BUDGETS}
    return {**_FIXED, "budgets": {**_FIXED["budgets"], **budgets}}


def check_override(field_name: str, value) -> None:
    """A command-line override of a profile field (e.g. --threads) meets the same check as the TOML."""
    for keys in _FIXED.values():
        for name, kind, check, meaning in keys.values():
            if name == field_name:
                if isinstance(value, bool) or not isinstance(value, (kind, int) if kind is float else kind) \
                        or not check(value):
                    raise UserError(f"--{field_name.replace('_', '-')} must be {meaning}, got {value!r}")
                return
    raise ValueError(f"{field_name!r} is not a profile field")


def builtin_profiles() -> list[str]:
    return builtin_names(PROFILE_DIR)


def builtin_names(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.toml"))


def named_toml(spec: str | Path, folder: Path, what: str) -> Path:
    """A path to a .toml (which must exist), or the name of a built-in one in `folder`; `what` names the
    kind in errors ("profile", "pipeline")."""
    path = Path(spec)
    if path.suffix == ".toml" or path.exists() or path.is_symlink():
        if (problem := path_problem(path, "file")) is not None:
            raise UserError(f"{what} file {path} {problem}; give the path of a .toml file, or a built-in {what}'s name")
        return path
    builtin = folder / f"{spec}.toml"
    if not builtin.is_file():
        raise UserError(f"unknown {what} {spec!r}; built-in {what}s: {', '.join(builtin_names(folder))}, "
                        "or give a path to your own .toml")
    return builtin


def load_profile(spec: str | Path) -> DeviceProfile:
    """A built-in profile name (ar-glasses, smartwatch, phone) or a path to a .toml file."""
    path = named_toml(spec, PROFILE_DIR, "profile")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"profile {path} is not valid TOML ({e})") from None
    schema, values = _schema(), {}
    for section, value in data.items():
        if isinstance(value, dict):
            if section not in schema or section == "":
                raise UserError(f"profile {path}: unknown section [{section}]; "
                                f"valid: {', '.join('[' + s + ']' for s in schema if s)}")
            _read_section(path, schema, section, value, values)
        else:
            _read_section(path, schema, "", {section: value}, values)
    for field_name, default in _OPTIONAL.items():
        values.setdefault(field_name, default)
    required = [k for sec, keys in _FIXED.items() for k, spec_ in keys.items() if spec_[0] not in values]
    required += [k for k, b in BUDGETS.items() if b.required and f"budget:{k}" not in values]
    if values.get("core", HOST_CORE) != HOST_CORE and values["clock_ghz"] is None:
        required.append("[device] clock_ghz")
    if required:
        raise UserError(f"profile {path}: missing {', '.join(required)}")
    budgets = {k.split(":", 1)[1]: values.pop(k) for k in list(values) if k.startswith("budget:")}
    return DeviceProfile(**values, budgets=budgets, source=str(path))


def _read_section(path: Path, schema: dict, section: str, table: dict, values: dict) -> None:
    where = f"[{section}] " if section else ""
    for key, raw in table.items():
        if key not in schema[section]:
            raise UserError(f"profile {path}: unknown key {where}{key!r}; valid: {', '.join(schema[section])}")
        field_name, kind, check, meaning = schema[section][key]
        if kind is float and isinstance(raw, int) and not isinstance(raw, bool):
            raw = float(raw)
        if not isinstance(raw, kind) or isinstance(raw, bool):
            raise UserError(f"profile {path}: {where}{key} must be {kind.__name__}, got {raw!r}")
        if not check(raw):
            raise UserError(f"profile {path}: {where}{key} = {raw!r} is out of range ({meaning})")
        values[field_name] = raw
