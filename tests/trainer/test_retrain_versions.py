"""Router versions, rollback, status, concurrent installs and retrain errors."""

from __future__ import annotations

import json
import os
import sqlite3
import threading

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from smartllm import Client, _versions  # noqa: E402
from smartllm._store import LOG_FILE_NAME  # noqa: E402
from smartllm.testing import OpenAIServer  # noqa: E402
from trainer._retrain_synth import write_synthetic_log  # noqa: E402

from retrain_scenario import (  # noqa: E402
    ANSWERS,
    install_test_router,
    make_prompts,
    pool_entries,
    run_cli,
)


@pytest.fixture
def home(tmp_path, monkeypatch):
    directory = tmp_path / "home"
    monkeypatch.setenv("SMARTLLM_HOME", str(directory))
    return directory


@pytest.fixture(scope="module")
def server():
    with OpenAIServer(answers=ANSWERS) as running:
        yield running


def test_rollback_restores_previous(home, server):
    """rollback without a version reactivates the router installed before the active one."""
    first = install_test_router(seed=0)
    second = install_test_router(seed=1)
    client = Client(models=pool_entries(server), random_state=0)
    assert client.route("Compute 2 + 2.").policy_version == second

    code, output = run_cli("rollback")

    assert code == 0
    assert _versions.current_version() == first
    assert client.route("Compute 2 + 2.").policy_version == first
    assert f"active router: {first}" in output


def test_rollback_to_bundled_removes_pointer(home):
    """rollback bundled deletes CURRENT, so the bundled router serves."""
    install_test_router()

    code, _ = run_cli("rollback", "bundled")

    assert code == 0
    assert _versions.current_version() is None


def test_rollback_unknown_version_fails(home, capsys):
    """rollback to a version that is not installed exits 1 and names the version."""
    install_test_router()

    code, _ = run_cli("rollback", "v9999-20990101T000000")

    assert code == 1
    assert "v9999-20990101T000000" in capsys.readouterr().err


def test_status_lists_versions_and_exploration(home, server):
    """status --json lists installed versions, the active one and per-model exploration."""
    first = install_test_router(seed=0)
    second = install_test_router(seed=1)
    client = Client(models=pool_entries(server), random_state=0)
    response = client.complete("Compute 3 * 4.", models=["openai/alpha"])
    client.feedback(response.request_id, 1.0)
    client.close()

    code, output = run_cli("status", "--json")

    report = json.loads(output)
    assert code == 0
    assert report["router_versions"] == [first, second]
    assert report["active_router"] == second
    assert report["exploration"]["openai/alpha"]["with_feedback"] == 1
    assert report["exploration"]["openai/alpha"]["min_propensity"] == 1.0
    assert report["exploration"]["openai/beta"]["chosen"] == 0
    assert any("openai/beta" in w and "no exploration data" in w for w in report["exploration_warnings"])


def test_under_explored_model_keeps_floor(home, server):
    """A model with too little feedback keeps at least min_explore probability."""
    install_test_router()
    client = Client(models=pool_entries(server), random_state=0, min_explore=0.2)

    decisions = [client.route(p) for p in make_prompts(10, seed=3)]

    assert all(min(d.probabilities.values()) >= 0.2 - 1e-9 for d in decisions)


def test_install_during_completions_loses_no_rows(home, server):
    """Completions running while routers are installed each write exactly one log row."""
    install_test_router(seed=0)
    client = Client(models=pool_entries(server), random_state=0, timeout=5.0)
    client.warm_up()
    request_ids: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def complete_many(seed: int) -> None:
        try:
            for prompt in make_prompts(15, seed=seed):
                response = client.complete(prompt)
                with lock:
                    request_ids.append(response.request_id)
        except BaseException as exc:  # reported by the assert below
            errors.append(exc)

    workers = [threading.Thread(target=complete_many, args=(s,)) for s in range(4)]
    for worker in workers:
        worker.start()
    installed = [install_test_router(seed=s) for s in range(1, 4)]
    for worker in workers:
        worker.join()
    client.close()

    connection = sqlite3.connect(home / LOG_FILE_NAME)
    logged = [row[0] for row in connection.execute("SELECT id FROM requests")]
    versions = {row[0] for row in connection.execute("SELECT policy_version FROM requests")}
    connection.close()
    assert errors == []
    assert len(request_ids) == 60
    assert sorted(logged) == sorted(request_ids)
    assert client.log_write_failures == 0
    assert versions <= {v.name for v in _versions.list_versions()}
    assert _versions.current_version() == installed[-1]


def test_retrain_without_log_fails(home, capsys):
    """retrain without a log exits 1 and names the expected log path."""
    code, _ = run_cli("retrain", "--no-plot")

    assert code == 1
    assert "no log at" in capsys.readouterr().err


def test_retrain_newer_schema_fails(home, capsys):
    """retrain on a log from a newer schema exits 1 and names the upgrade."""
    write_synthetic_log(home / LOG_FILE_NAME, 50)
    connection = sqlite3.connect(home / LOG_FILE_NAME)
    connection.execute("PRAGMA user_version = 99")
    connection.close()

    code, _ = run_cli("retrain", "--no-plot")

    error = capsys.readouterr().err
    assert code == 1
    assert "schema version 99" in error
    assert "upgrade smartllm" in error


def test_retrain_other_embedder_fails(home, capsys):
    """retrain on rows logged with another embedder exits 1 and explains the mismatch."""
    write_synthetic_log(home / LOG_FILE_NAME, 300, embedder_sha256="0" * 64)

    code, _ = run_cli("retrain", "--no-plot")

    assert code == 1
    assert "another embedder" in capsys.readouterr().err


def test_retrain_too_few_rows_fails(home, capsys):
    """retrain with too little feedback exits 1 and states how many calls are needed."""
    write_synthetic_log(home / LOG_FILE_NAME, 200, n_models=4)

    code, _ = run_cli("retrain", "--no-plot", "--min-feedback", "100")

    error = capsys.readouterr().err
    assert code == 1
    assert "too few rows with feedback" in error
    assert "at least 100" in error
