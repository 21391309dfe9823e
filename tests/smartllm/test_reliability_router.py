"""Damaged routers: installed ones fall back to the bundled router, bundled ones fail clearly.

An installed router (``<data_dir>/routers/<version>`` named by
``routers/CURRENT``) that cannot be used is skipped with one WARNING naming
the version, and the bundled router serves. A router that loads but returns
unusable outputs at run time degrades to the price-only choice, logged with a
``+degraded`` policy version. A damaged bundled asset raises AssetError that
names the file; these tests damage copies, never the files in smartllm/assets.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import types
from pathlib import Path

import pytest

import smartllm._paths
from smartllm import AssetError, Client
from smartllm import _router
from smartllm.testing import build_router

from shared import POOL, PRICES, QUALITY, pool_entries

PROMPT = "Translate 'good morning' into French."


@pytest.fixture
def bundled(tmp_path, monkeypatch):
    """A test router standing in for the bundled one."""
    directory = build_router(tmp_path / "bundled", POOL, quality=QUALITY, prices=PRICES)
    monkeypatch.setattr(_router, "bundled_router_dir", lambda: directory)
    return directory


@pytest.fixture
def installed_client(bundled, home, server):
    """A client without an explicit router, so it reads routers/CURRENT."""
    client = Client(
        models=pool_entries(server), random_state=0, timeout=5.0, retry_base_delay=0.01
    )
    yield client
    client.close()


def install(home: Path, version: str, **options: object) -> Path:
    """Write a router version and point routers/CURRENT at it atomically."""
    directory = build_router(home / "routers" / version, POOL, prices=PRICES, **options)
    write_pointer(home, version.encode("utf-8") + b"\n")
    return directory


def write_pointer(home: Path, content: bytes) -> None:
    routers = home / "routers"
    routers.mkdir(parents=True, exist_ok=True)
    temporary = routers / ".CURRENT.tmp"
    temporary.write_bytes(content)
    os.replace(temporary, routers / "CURRENT")


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def drop_recorded_sha(directory: Path) -> None:
    """Remove onnx_sha256 from router.json, so the ONNX parser itself meets the damage."""
    manifest_path = directory / "router.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["onnx_sha256"]
    manifest_path.write_text(json.dumps(manifest))


DAMAGES = {
    "truncated onnx": lambda d: truncate(d / "router.onnx"),
    "truncated onnx, no recorded sha": lambda d: (drop_recorded_sha(d), truncate(d / "router.onnx")),
    "garbage onnx, no recorded sha": lambda d: (
        drop_recorded_sha(d),
        (d / "router.onnx").write_bytes(os.urandom(2048)),
    ),
    "empty onnx": lambda d: (d / "router.onnx").write_bytes(b""),
    "missing onnx": lambda d: (d / "router.onnx").unlink(),
    "truncated json": lambda d: truncate(d / "router.json"),
    "garbage json": lambda d: (d / "router.json").write_bytes(b"\x00\xff not json {{"),
    "json is a list": lambda d: (d / "router.json").write_text("[1, 2, 3]"),
    "json invalid utf-8": lambda d: (d / "router.json").write_bytes(b'{"models": "\xff\xfe"}'),
    "json is a directory": lambda d: ((d / "router.json").unlink(), (d / "router.json").mkdir()),
    "missing json": lambda d: (d / "router.json").unlink(),
    "wrong input_dim": lambda d: _edit_manifest(d, input_dim=10),
    "models not a list": lambda d: _edit_manifest(d, models="openai/cheap"),
    "input_dim not a number": lambda d: _edit_manifest(d, input_dim="392"),
    "other embedder": lambda d: _edit_manifest(d, embedder_sha256="e" * 64),
}


def _edit_manifest(directory: Path, **changes: object) -> None:
    manifest_path = directory / "router.json"
    manifest = json.loads(manifest_path.read_text())
    manifest.update(changes)
    manifest_path.write_text(json.dumps(manifest))


def _assert_bundled_serves(client, home, caplog, version_hint):
    with caplog.at_level(logging.WARNING, logger="smartllm"):
        first = client.complete(PROMPT)
        second = client.complete(PROMPT)

    assert first.routing.policy_version.startswith("bundled-")
    assert second.routing.policy_version.startswith("bundled-")
    warnings = [
        r for r in caplog.records if r.levelno == logging.WARNING and "bundled" in r.getMessage()
    ]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert version_hint in warnings[0].getMessage()


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_installed_router_falls_back(damage, installed_client, home, caplog, log_rows):
    """A damaged installed router warns once, and the bundled router serves every call."""
    directory = install(home, "v0001-damaged")
    DAMAGES[damage](directory)

    _assert_bundled_serves(installed_client, home, caplog, "v0001-damaged")

    rows = log_rows()
    assert len(rows) == 2
    assert all(row["policy_version"].startswith("bundled-") for row in rows)


@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe\x00garbage\n", b"v1\x00evil\n", b"../escape\n", b"\n", b"no-such-version\n"],
    ids=["invalid utf-8", "NUL byte", "path", "empty", "missing version"],
)
def test_bad_pointer_falls_back(content, installed_client, home, caplog):
    """A CURRENT file that names no usable version warns once; the bundled router serves."""
    write_pointer(home, content)

    with caplog.at_level(logging.WARNING, logger="smartllm"):
        first = installed_client.complete(PROMPT)
        second = installed_client.complete(PROMPT)

    assert first.routing.policy_version.startswith("bundled-")
    assert second.routing.policy_version.startswith("bundled-")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "CURRENT" in warnings[0].getMessage() or "rejected" in warnings[0].getMessage()


def test_repaired_router_used_after_reinstall(installed_client, home, caplog):
    """After a damaged version, installing a good one switches to it."""
    truncate(install(home, "v0001-damaged") / "router.onnx")
    assert installed_client.route(PROMPT).policy_version.startswith("bundled-")

    install(home, "v0002-good")

    assert installed_client.route(PROMPT).policy_version == "v0002-good"


def test_router_run_error_degrades(make_client, monkeypatch, caplog, log_rows):
    """An ONNX run error at request time degrades to the price-only choice and is logged."""
    client = make_client()

    def broken_run(self, features, lam):
        raise RuntimeError("simulated onnxruntime failure")

    monkeypatch.setattr(_router.Router, "predict", broken_run)
    with caplog.at_level(logging.WARNING, logger="smartllm"):
        response = client.complete(PROMPT)

    assert response.text
    assert response.routing.policy_version.endswith("+degraded")
    assert "simulated onnxruntime failure" in caplog.text
    assert log_rows()[0]["policy_version"].endswith("+degraded")


@pytest.mark.filterwarnings("ignore:exploration=0")
@pytest.mark.parametrize("exploration", [0.0, 0.05])
@pytest.mark.parametrize("nan_models", [["openai/strong"], POOL], ids=["one", "all"])
def test_nan_router_outputs_degrade(
    nan_models, exploration, tmp_path, make_client, caplog, log_rows
):
    """A router that returns NaN quality and logits degrades instead of failing the call."""
    quality = dict(QUALITY, **{name: math.nan for name in nan_models})
    directory = build_router(tmp_path / "nan", POOL, quality=quality, prices=PRICES)
    client = make_client(router=directory, exploration=exploration)

    with caplog.at_level(logging.WARNING, logger="smartllm"):
        responses = [client.complete(PROMPT) for _ in range(3)]

    for response in responses:
        decision = response.routing
        assert response.text
        assert math.fsum(decision.probabilities.values()) == pytest.approx(1.0)
        assert decision.propensity == decision.probabilities[decision.model]
        assert decision.policy_version.endswith("+degraded")
        assert all(math.isfinite(q) for q in decision.predicted_quality.values())
    warnings = [r for r in caplog.records if "non-finite" in r.getMessage()]
    assert len(warnings) == 1
    assert all(row["policy_version"].endswith("+degraded") for row in log_rows())


# -- damaged bundled assets, on a copy of smartllm/assets -------------------


@pytest.fixture
def asset_copy(tmp_path, monkeypatch):
    """A copy of the package's asset directory that asset_path() reads instead."""
    source = smartllm._paths.asset_path("embedder.json").parent
    root = tmp_path / "package"
    assets = root / "assets"
    assets.mkdir(parents=True)
    for item in source.iterdir():
        # The 45 MB model is linked, not copied; a test that damages it replaces the link.
        if item.name == "embedder.onnx":
            (assets / item.name).symlink_to(item)
        elif item.is_file():
            shutil.copy2(item, assets / item.name)
    build_router(assets, POOL, quality=QUALITY, prices=PRICES)
    fake_resources = types.SimpleNamespace(files=lambda package: root)
    monkeypatch.setattr(smartllm._paths, "resources", fake_resources)
    return assets


def test_asset_copy_is_usable(asset_copy, home):
    """The copied assets serve routing, so the damage tests below test only the damage."""
    decision = Client(models=POOL).route(PROMPT)

    assert decision.policy_version.startswith("bundled-")


def _replace_link(path: Path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


BUNDLED_DAMAGES = {
    "embedder.onnx": lambda a: _replace_link(a / "embedder.onnx", b"\x08\x07garbage" * 100),
    "tokenizer.json": lambda a: truncate(a / "tokenizer.json"),
    "embedder.json": lambda a: (a / "embedder.json").write_text("{not json"),
    "router.json": lambda a: truncate(a / "router.json"),
    "router.onnx": lambda a: truncate(a / "router.onnx"),
}


@pytest.mark.parametrize("name", list(BUNDLED_DAMAGES))
def test_damaged_bundled_asset_names_file(name, asset_copy, home):
    """A damaged bundled asset raises AssetError whose message names the file and a fix."""
    BUNDLED_DAMAGES[name](asset_copy)

    with pytest.raises(AssetError) as raised:
        Client(models=POOL).route(PROMPT)

    message = str(raised.value)
    assert str(asset_copy / name) in message
    assert "reinstall" in message


@pytest.mark.parametrize("name", ["embedder.onnx", "tokenizer.json", "router.onnx"])
def test_missing_bundled_asset_names_file(name, asset_copy, home):
    """A missing bundled asset raises AssetError naming the file."""
    (asset_copy / name).unlink()

    with pytest.raises(AssetError) as raised:
        Client(models=POOL).route(PROMPT)

    assert str(asset_copy / name) in str(raised.value)


@pytest.mark.filterwarnings("ignore:exploration=0")
def test_degraded_choice_is_cheapest(make_client, monkeypatch):
    """A failed router run puts the whole policy part on the cheapest allowed model."""
    client = make_client(exploration=0.0, min_explore=0.0)

    def broken_run(self, features, lam):
        raise RuntimeError("simulated onnxruntime failure")

    monkeypatch.setattr(_router.Router, "predict", broken_run)
    decision = client.route(PROMPT)
    cheapest = min(decision.predicted_cost, key=decision.predicted_cost.get)

    assert decision.policy_version.endswith("+degraded")
    assert decision.model == cheapest
    assert decision.probabilities[cheapest] == pytest.approx(1.0)
