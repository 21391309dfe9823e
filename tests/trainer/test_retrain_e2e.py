"""End-to-end retraining: a client logs graded calls, retrain installs a better router."""

from __future__ import annotations

import os
import shutil
import sqlite3

import numpy as np
import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from smartllm import Client, _versions  # noqa: E402
from smartllm.testing import OpenAIServer  # noqa: E402

from retrain_scenario import (  # noqa: E402
    ANSWERS,
    expected_utility,
    grade,
    install_test_router,
    make_prompts,
    pool_entries,
    run_retrain,
)

LOGGED_REQUESTS = 300
FRESH_PROMPTS = make_prompts(60, seed=99)


@pytest.fixture(scope="module")
def server():
    with OpenAIServer(answers=ANSWERS) as running:
        yield running


@pytest.fixture(scope="module")
def logged_home(tmp_path_factory, server):
    """A data directory whose log contains graded calls made under an untrained router."""
    home = tmp_path_factory.mktemp("logged") / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SMARTLLM_HOME", str(home))
        version = install_test_router()
        client = Client(models=pool_entries(server), evaluator=grade, random_state=0, timeout=5.0)
        for prompt in make_prompts(LOGGED_REQUESTS, seed=1):
            client.complete(prompt)
        client.close()
    return home, version


@pytest.fixture
def home(logged_home, tmp_path, monkeypatch):
    """A private copy of the logged data directory, set as SMARTLLM_HOME."""
    source, _ = logged_home
    copy = tmp_path / "home"
    shutil.copytree(source, copy)
    monkeypatch.setenv("SMARTLLM_HOME", str(copy))
    return copy


def test_retrain_improves_routing(home, logged_home, server):
    """After retrain, a running client routes fresh prompts with higher expected score."""
    _, first_version = logged_home
    client = Client(models=pool_entries(server), random_state=0, timeout=5.0)
    before = expected_utility(client, FRESH_PROMPTS)
    assert client.route(FRESH_PROMPTS[0]).policy_version == first_version

    report = run_retrain()

    assert report["promoted"] is True
    assert report["rows_used"] == LOGGED_REQUESTS
    assert report["version"] != first_version
    after = expected_utility(client, FRESH_PROMPTS)
    assert after > before + 0.15
    assert client.route(FRESH_PROMPTS[1]).policy_version == report["version"]

    response = client.complete(FRESH_PROMPTS[2])
    connection = sqlite3.connect(home / "log.sqlite3")
    (logged_version,) = connection.execute(
        "SELECT policy_version FROM requests WHERE id = ?", (response.request_id,)
    ).fetchone()
    connection.close()
    client.close()
    assert logged_version == report["version"]


def test_retrain_report_fields(home):
    """--json reports values per λ, the exclusions and the feedback per model."""
    report = run_retrain("--dry-run")

    assert report["promoted"] is False
    assert set(report["current_value"]) >= {"lambda", "value", "ci_low", "ci_high"}
    assert len(report["candidate_value"]["value"]) == len(report["lambda_grid"])
    assert report["excluded"]["no_feedback"] == 0
    assert sum(report["feedback_per_model"].values()) == LOGGED_REQUESTS
    assert {"dr-policy", "constant"} <= set(report["differences"])


def test_gate_rejects_scrambled_feedback(home):
    """With feedback shuffled across requests, no candidate beats the current router."""
    connection = sqlite3.connect(home / "log.sqlite3")
    ids = [row[0] for row in connection.execute("SELECT id FROM feedback ORDER BY id")]
    scores = [row[0] for row in connection.execute("SELECT score FROM feedback ORDER BY id")]
    shuffled = np.random.default_rng(0).permutation(scores)
    with connection:
        connection.executemany(
            "UPDATE feedback SET score = ? WHERE id = ?",
            [(float(s), i) for s, i in zip(shuffled, ids, strict=True)],
        )
    connection.close()
    active = _versions.current_version()

    report = run_retrain()

    assert report["promoted"] is False
    assert report["selected"] is None
    assert _versions.current_version() == active
    assert len(_versions.list_versions()) == 1


def test_min_new_skips_without_new_feedback(home):
    """--min-new exits without training when too little feedback arrived since the last run."""
    run_retrain("--seed", "1")

    report = run_retrain("--min-new", "10")

    assert report["skipped"] is True
    assert report["new_feedback"] == 0
    assert report["promoted"] is False
