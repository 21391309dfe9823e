"""Router validation, installed routers and reload without restart."""

from __future__ import annotations

import json
import logging
import os
import time

import pytest

from smartllm import AssetError, Client
from smartllm import _router
from smartllm.testing import build_router

from shared import POOL, PRICES, QUALITY

PROMPT = "Explain the CAP theorem."


def test_embedder_mismatch_rejected(tmp_path, home):
    """An explicit router trained on another embedder raises AssetError."""
    directory = build_router(tmp_path / "r", POOL, prices=PRICES, embedder_sha256="0" * 64)
    client = Client(models=POOL, router=directory)
    with pytest.raises(AssetError, match="embedder"):
        client.route(PROMPT)


def test_feature_mismatch_rejected(tmp_path, home):
    """A router that lists unknown features raises AssetError."""
    directory = build_router(tmp_path / "r", POOL, prices=PRICES, extra={"features": "other/v9"})
    with pytest.raises(AssetError, match="features"):
        Client(models=POOL, router=directory).route(PROMPT)


def test_bare_embedding_router(tmp_path, home):
    """A minilm384 router is served the 384-wide embedding alone."""
    directory = build_router(tmp_path / "r", POOL, prices=PRICES, features="minilm384")
    decision = Client(models=POOL, router=directory).route(PROMPT)
    assert decision.features.shape == (1, 384)


def test_damaged_onnx_rejected(tmp_path, home):
    """An ONNX file whose sha256 differs from router.json raises AssetError."""
    directory = build_router(tmp_path / "r", POOL, prices=PRICES)
    (directory / "router.onnx").write_bytes(b"garbage")
    with pytest.raises(AssetError, match="sha256"):
        Client(models=POOL, router=directory).route(PROMPT)


@pytest.fixture
def bundled(tmp_path, monkeypatch):
    """Stand in for the bundled router until the package ships one."""
    directory = build_router(tmp_path / "bundled", POOL, quality=QUALITY, prices=PRICES)
    monkeypatch.setattr(_router, "bundled_router_dir", lambda: directory)
    return directory


def _install(home, version, **options):
    directory = home / "routers" / version
    build_router(directory, POOL, prices=PRICES, **options)
    pointer = home / "routers" / "CURRENT"
    pointer.write_text(version + "\n")
    # Make the change visible even on file systems with coarse mtimes.
    stamp = time.time() + hash(version) % 100
    os.utime(pointer, (stamp, stamp))
    return directory


def test_bundled_version_name(bundled, home):
    """Without an installed router, the version is bundled-<12 hex>."""
    decision = Client(models=POOL).route(PROMPT)
    assert decision.policy_version.startswith("bundled-")
    assert len(decision.policy_version) == len("bundled-") + 12


def test_installed_router_reloaded_without_restart(bundled, home):
    """Writing routers/CURRENT switches the next call to the named router."""
    client = Client(models=POOL)
    assert client.route(PROMPT).policy_version.startswith("bundled-")
    _install(home, "v2", quality={"openai/cheap": 0.99})
    assert client.route(PROMPT).policy_version == "v2"
    _install(home, "v3")
    assert client.route(PROMPT).policy_version == "v3"


def test_bad_installed_router_falls_back(bundled, home, caplog):
    """An installed router with the wrong embedder warns once and the bundled one serves."""
    client = Client(models=POOL)
    _install(home, "broken", embedder_sha256="f" * 64)
    with caplog.at_level(logging.WARNING):
        first = client.route(PROMPT)
        second = client.route(PROMPT)
    assert first.policy_version.startswith("bundled-")
    assert second.policy_version.startswith("bundled-")
    warnings = [r for r in caplog.records if "broken" in r.getMessage()]
    assert len(warnings) == 1


def test_pointer_with_path_rejected(bundled, home, caplog):
    """A CURRENT file naming a path outside routers/ is ignored with a warning."""
    (home / "routers").mkdir(parents=True)
    (home / "routers" / "CURRENT").write_text("../../etc")
    decision = Client(models=POOL).route(PROMPT)
    assert decision.policy_version.startswith("bundled-")
    assert "not a router version" in caplog.text


def test_manifest_records_expected_keys(bundled):
    """The test router's manifest follows the artefact contract."""
    manifest = json.loads((bundled / "router.json").read_text())
    assert manifest["format_version"] == 1
    assert manifest["input_dim"] == 392
    assert manifest["lambda_units"] == "quality points per USD"
