"""Installed router versions under ``<data_dir>/routers``.

Layout::

    routers/
        CURRENT                      one line: the active version's name
        v0001-20261204T181500/       router.onnx + router.json
        v0002-20261205T020000/
        last_retrain.json            when the last retrain ran (for --min-new)

A version is installed by writing it to a hidden staging directory inside
``routers/`` and renaming that directory, so a reader never sees a partial
router. ``CURRENT`` is replaced with :func:`os.replace`, which is atomic on
POSIX and Windows, and a running client picks up the change on its next
request (see :class:`smartllm._router.RouterSource`). Without ``CURRENT`` the
bundled router serves.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import ConfigurationError
from ._paths import data_dir
from ._router import POINTER_NAME

logger = logging.getLogger(__name__)

ROUTERS_DIR_NAME = "routers"
STATE_FILE_NAME = "last_retrain.json"
BUNDLED = "bundled"
_VERSION_PATTERN = re.compile(r"^v(\d{4,})-(\d{8}T\d{6})$")
_STAGING_PREFIX = ".staging-"


@dataclass(frozen=True)
class RouterVersion:
    """One installed router directory."""

    name: str
    number: int
    created: str  # UTC timestamp from the name, e.g. 20261204T181500
    path: Path


def routers_dir() -> Path:
    """Return ``<data_dir>/routers``; it is not created here."""
    return data_dir() / ROUTERS_DIR_NAME


def list_versions(directory: Path | None = None) -> list[RouterVersion]:
    """Return the installed versions, oldest first.

    Only directories named ``v<number>-<UTC time>`` that contain a
    ``router.json`` count, so staging directories and stray files are skipped.
    """
    directory = directory or routers_dir()
    versions = []
    try:
        entries = list(directory.iterdir())
    except FileNotFoundError:
        return []
    for entry in entries:
        match = _VERSION_PATTERN.match(entry.name)
        if match and (entry / "router.json").is_file():
            versions.append(
                RouterVersion(entry.name, int(match.group(1)), match.group(2), entry)
            )
    return sorted(versions, key=lambda v: v.number)


def current_version(directory: Path | None = None) -> str | None:
    """Return the version named by ``CURRENT``, or None when the bundled router serves."""
    pointer = (directory or routers_dir()) / POINTER_NAME
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return name or None


def next_version_name(directory: Path | None = None, now: float | None = None) -> str:
    """Return the name for a new version: the next number and the UTC time."""
    versions = list_versions(directory)
    number = versions[-1].number + 1 if versions else 1
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(time.time() if now is None else now))
    return f"v{number:04d}-{stamp}"


def staging_directory(directory: Path | None = None) -> Path:
    """Create and return an empty staging directory inside ``routers/``.

    Staging on the same file system as the final location makes the rename in
    :func:`install_version` atomic.
    """
    directory = directory or routers_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=directory))


def install_version(
    staged: Path, directory: Path | None = None, activate: bool = True
) -> RouterVersion:
    """Rename a staged router directory to a new version and, by default, activate it.

    When another process installs at the same moment and takes the name, the
    next number is tried. Returns the installed version.
    """
    directory = directory or routers_dir()
    for _ in range(100):
        name = next_version_name(directory)
        target = directory / name
        try:
            os.rename(staged, target)
        except OSError:
            if target.exists():
                continue  # another installer took this name
            raise
        break
    else:
        raise OSError(f"cannot find a free version name in {directory}")

    version = list_versions_by_name(directory)[name]
    logger.info("installed router %s", name)
    if activate:
        set_current(name, directory)
    return version


def list_versions_by_name(directory: Path | None = None) -> dict[str, RouterVersion]:
    """Return the installed versions keyed by name."""
    return {v.name: v for v in list_versions(directory)}


def set_current(name: str, directory: Path | None = None) -> None:
    """Point ``CURRENT`` at an installed version, or remove it for ``bundled``.

    Raises ConfigurationError when the version is not installed.
    """
    directory = directory or routers_dir()
    pointer = directory / POINTER_NAME
    if name == BUNDLED:
        try:
            os.remove(pointer)
        except FileNotFoundError:
            pass
        logger.info("bundled router activated")
        return

    if name not in list_versions_by_name(directory):
        raise ConfigurationError(
            f"router version {name!r} is not installed in {directory}; run "
            "'smartllm status' to list the versions"
        )
    handle, temporary = tempfile.mkstemp(prefix=".CURRENT-", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(name + "\n")
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, pointer)
    except BaseException:
        try:
            os.remove(temporary)
        except FileNotFoundError:
            pass
        raise
    logger.info("router %s activated", name)


def previous_version(directory: Path | None = None) -> str:
    """Return the version to roll back to: the newest one older than the active one.

    With the oldest installed version active, the result is ``bundled``.
    Raises ConfigurationError when the bundled router is already active.
    """
    directory = directory or routers_dir()
    active = current_version(directory)
    if active is None:
        raise ConfigurationError(
            "the bundled router is active, so there is no earlier router to return to"
        )
    versions = list_versions(directory)
    numbers = {v.name: v.number for v in versions}
    active_number = numbers.get(active)
    older = [v for v in versions if active_number is None or v.number < active_number]
    return older[-1].name if older else BUNDLED


def remove_stale_staging(directory: Path | None = None, max_age_s: float = 86400.0) -> None:
    """Delete staging directories left by interrupted installs older than ``max_age_s``."""
    directory = directory or routers_dir()
    try:
        entries = list(directory.iterdir())
    except FileNotFoundError:
        return
    cutoff = time.time() - max_age_s
    for entry in entries:
        if entry.name.startswith(_STAGING_PREFIX) and entry.stat().st_mtime < cutoff:
            shutil.rmtree(entry, ignore_errors=True)


def read_state(directory: Path | None = None) -> dict[str, Any]:
    """Return the record of the last retrain, empty when there was none."""
    path = (directory or routers_dir()) / STATE_FILE_NAME
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        logger.warning("cannot read %s (%s); treating it as absent", path, exc)
        return {}
    return state if isinstance(state, dict) else {}


def write_state(state: dict[str, Any], directory: Path | None = None) -> None:
    """Replace the record of the last retrain atomically."""
    directory = directory or routers_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".state-", dir=directory)
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        json.dump(state, stream, indent=2)
    os.replace(temporary, directory / STATE_FILE_NAME)
