"""Device profiles: TOML files (device_sim/profiles/*.toml or a user's path) validated on load into
frozen dataclasses. Unknown sections or keys and out-of-range values are errors, never ignored.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from device_sim.errors import SimError

__all__ = ["DeviceProfile", "load_profile", "check_override", "builtin_profiles", "PROFILE_DIR"]

PROFILE_DIR = Path(__file__).with_name("profiles")
DROP_POLICIES = ("latest", "queue")


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    description: str
    camera_width: int
    camera_height: int
    fps: float
    threads: int
    slowdown: float             # target CPU time = host time * slowdown (emulated, labelled so)
    drop_policy: str            # "latest" or "queue"
    queue_size: int
    latency_percentile: float
    latency_ms: float
    memory_mb: float
    model_size_mb: float
    source: str = ""

    @property
    def frame_period_ms(self) -> float:
        return 1000.0 / self.fps

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# section -> key -> (field name, type, check, what the check means)
_SCHEMA = {
    "": {"name": ("name", str, lambda v: bool(v.strip()), "a non-empty string"),
         "description": ("description", str, lambda v: True, "a string")},
    "camera": {"width": ("camera_width", int, lambda v: 16 <= v <= 8192, "16..8192"),
               "height": ("camera_height", int, lambda v: 16 <= v <= 8192, "16..8192"),
               "fps": ("fps", float, lambda v: 0 < v <= 240, "> 0 and <= 240")},
    "runtime": {"threads": ("threads", int, lambda v: 1 <= v <= 64, "1..64"),
                "slowdown": ("slowdown", float, lambda v: 1.0 <= v <= 1000, ">= 1 (1 = as fast as this host)")},
    "pipeline": {"drop_policy": ("drop_policy", str, lambda v: v in DROP_POLICIES, " or ".join(DROP_POLICIES)),
                 "queue_size": ("queue_size", int, lambda v: 1 <= v <= 1000, "1..1000")},
    "budgets": {"latency_percentile": ("latency_percentile", float, lambda v: 50 <= v <= 100, "50..100"),
                "latency_ms": ("latency_ms", float, lambda v: v > 0, "> 0"),
                "memory_mb": ("memory_mb", float, lambda v: v > 0, "> 0"),
                "model_size_mb": ("model_size_mb", float, lambda v: v > 0, "> 0")},
}
_OPTIONAL = {"description": "", "queue_size": 4, "slowdown": 1.0}


def check_override(field_name: str, value) -> None:
    """A command-line override of a profile field (e.g. --threads) meets the same check as the TOML."""
    for keys in _SCHEMA.values():
        for name, _, check, meaning in keys.values():
            if name == field_name:
                if not check(value):
                    raise SimError(f"--{field_name.replace('_', '-')} must be {meaning}, got {value!r}")
                return
    raise ValueError(f"{field_name!r} is not a profile field")


def builtin_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


def _path_for(spec: str | Path) -> Path:
    path = Path(spec)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise SimError(f"profile file {path} does not exist")
        return path
    builtin = PROFILE_DIR / f"{spec}.toml"
    if not builtin.is_file():
        raise SimError(f"unknown profile {spec!r}; built-in profiles: {', '.join(builtin_profiles())}, "
                       "or give a path to your own .toml")
    return builtin


def load_profile(spec: str | Path) -> DeviceProfile:
    """A built-in profile name (ar-glasses, smartwatch, phone) or a path to a .toml file."""
    path = _path_for(spec)
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise SimError(f"profile {path} is not valid TOML ({e})") from None
    values: dict = {}
    for section, value in data.items():
        if isinstance(value, dict):
            if section not in _SCHEMA or section == "":
                raise SimError(f"profile {path}: unknown section [{section}]; "
                               f"valid: {', '.join('[' + s + ']' for s in _SCHEMA if s)}")
            _read_section(path, section, value, values)
        else:
            _read_section(path, "", {section: value}, values)
    for field_name, default in _OPTIONAL.items():
        values.setdefault(field_name, default)
    missing = [key for sec, keys in _SCHEMA.items() for key, spec_ in keys.items() if spec_[0] not in values]
    if missing:
        raise SimError(f"profile {path}: missing {', '.join(missing)}")
    return DeviceProfile(**values, source=str(path))


def _read_section(path: Path, section: str, table: dict, values: dict) -> None:
    where = f"[{section}] " if section else ""
    for key, raw in table.items():
        if key not in _SCHEMA[section]:
            raise SimError(f"profile {path}: unknown key {where}{key!r}; valid: {', '.join(_SCHEMA[section])}")
        field_name, kind, check, meaning = _SCHEMA[section][key]
        if kind is float and isinstance(raw, int) and not isinstance(raw, bool):
            raw = float(raw)
        if not isinstance(raw, kind) or isinstance(raw, bool):
            raise SimError(f"profile {path}: {where}{key} must be {kind.__name__}, got {raw!r}")
        if not check(raw):
            raise SimError(f"profile {path}: {where}{key} = {raw!r} is out of range ({meaning})")
        values[field_name] = raw
