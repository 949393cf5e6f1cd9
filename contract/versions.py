"""The project's version (from the installed package metadata: pyproject.toml is the one place it is
written) and the versions of the tools a run used."""

from __future__ import annotations

import platform
from importlib import metadata

__all__ = ["project_version", "package_versions", "PROJECT"]

PROJECT = "edgevit"


def project_version() -> str:
    try:
        return metadata.version(PROJECT)
    except metadata.PackageNotFoundError:   # a device that copied the folders without installing
        return "unknown (not installed)"


def package_versions(names) -> dict[str, str]:
    """{"python": ..., name: version or "not installed"} for each distribution name."""
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
