"""Locations of bundled artefacts and of the user data directory."""

from __future__ import annotations

import hashlib
import os
from importlib import resources
from pathlib import Path

ENV_HOME = "SMARTLLM_HOME"


def data_dir() -> Path:
    """Return the directory for logs and retrained routers.

    ``SMARTLLM_HOME`` overrides the platformdirs user data directory. The
    directory is not created here.
    """
    override = os.environ.get(ENV_HOME)
    if override:
        return Path(override).expanduser()

    import platformdirs

    return Path(platformdirs.user_data_dir("smartllm", appauthor=False))


def asset_path(name: str) -> Path:
    """Return the path of a file bundled in ``smartllm/assets``."""
    return Path(str(resources.files("smartllm") / "assets" / name))


def file_sha256(path: Path) -> str:
    """Return the hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
