"""The SQLite log: contents, permissions, schema and feedback across processes."""

from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
import sys

import numpy as np
import pytest

from smartllm import Client, FeedbackError, LogStoreError
from smartllm._store import SCHEMA_VERSION, LogStore

PROMPT = "Write a haiku about SQLite."


def test_log_row_contents(make_client, log_rows):
    """A completion writes one row with the decision, outcome and features."""
    client = make_client()
    response = client.complete(PROMPT, budget=0.002, session_id="s-1")
    rows = log_rows()
    assert len(rows) == 1
    row = rows[0]
    assert row["id"] == response.request_id
    assert row["policy_version"] == response.routing.policy_version
    assert row["embedder_sha256"] == client._embedder.sha256
    assert row["features"] == "minilm384+shape8/v1"
    assert len(row["embedding"]) == 392 * 2
    stored = np.frombuffer(row["embedding"], dtype="<f2")
    assert np.allclose(stored, response.routing.features[0], atol=1e-2)
    assert len(row["prompt_sha256"]) == 64
    assert row["prompt"] is None
    assert row["lam"] == 0.0
    assert row["budget"] == 0.002
    assert json.loads(row["allowed_models"]) == list(response.routing.probabilities)
    assert json.loads(row["probabilities"]) == pytest.approx(response.routing.probabilities)
    assert row["chosen_model"] == response.routing.model
    assert row["served_model"] == response.model
    assert row["propensity"] == pytest.approx(response.routing.propensity)
    assert json.loads(row["fallback_chain"]) == [response.model]
    assert row["input_tokens"] == response.input_tokens
    assert row["output_tokens"] == response.output_tokens
    assert row["cost"] == pytest.approx(response.cost)
    assert row["latency_ms"] > 0
    assert row["routing_ms"] > 0
    assert row["error"] is None
    assert row["session_id"] == "s-1"
    assert row["status"] == "ok"
    predictions = json.loads(row["predictions"])
    assert set(predictions[response.model]) == {"quality", "cost", "output_tokens"}


def test_log_never_contains_api_key(make_client, home):
    """The API key of a pool entry appears nowhere in the log file."""
    client = make_client()
    client.complete(PROMPT)
    client.close()
    for path in home.glob("log.sqlite3*"):
        assert b"test-key" not in path.read_bytes()


def test_prompt_stored_only_when_enabled(make_client, log_rows):
    """log_prompts=True stores the prompt text; the default stores none."""
    make_client().complete(PROMPT)
    make_client(log_prompts=True).complete(PROMPT)
    rows = log_rows()
    assert rows[0]["prompt"] is None
    assert rows[1]["prompt"] == PROMPT


def test_file_modes(make_client, home):
    """The log file is 0600 and the data directory it created is 0700."""
    make_client().complete(PROMPT)
    assert stat.S_IMODE((home / "log.sqlite3").stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    wal = home / "log.sqlite3-wal"
    if wal.exists():
        assert stat.S_IMODE(wal.stat().st_mode) == 0o600


def test_wal_mode_and_schema_version(make_client, home):
    """The log uses WAL journaling and records its schema version."""
    make_client().complete(PROMPT)
    connection = sqlite3.connect(home / "log.sqlite3")
    (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    connection.close()
    assert mode == "wal"
    assert version == SCHEMA_VERSION


def test_newer_schema_rejected(tmp_path):
    """A log written by a newer schema raises LogStoreError naming the version."""
    path = tmp_path / "log.sqlite3"
    connection = sqlite3.connect(path)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    connection.close()
    with pytest.raises(LogStoreError, match=str(SCHEMA_VERSION + 5)):
        LogStore(path).connection()


def test_feedback_recorded_and_latest_counts(make_client, home):
    """Repeated feedback is kept and the latest_feedback view returns the last score."""
    client = make_client()
    response = client.complete(PROMPT)
    client.feedback(response.request_id, 0.2)
    client.feedback(response.request_id, 0.9, source="user")
    connection = sqlite3.connect(home / "log.sqlite3")
    scores = connection.execute("SELECT score FROM feedback ORDER BY id").fetchall()
    latest = connection.execute("SELECT score, source FROM latest_feedback").fetchall()
    connection.close()
    assert scores == [(0.2,), (0.9,)]
    assert latest == [(0.9, "user")]


def test_feedback_unknown_id(make_client):
    """Feedback for an id that is not in the log raises FeedbackError."""
    client = make_client()
    client.complete(PROMPT)
    with pytest.raises(FeedbackError, match="not in the log"):
        client.feedback("0" * 32, 1.0)


@pytest.mark.parametrize("score", [float("nan"), -0.1, 1.5, float("inf"), "1", None, True])
def test_feedback_invalid_score(make_client, score):
    """A NaN, out-of-range or non-number score raises FeedbackError naming it."""
    client = make_client()
    response = client.complete(PROMPT)
    with pytest.raises(FeedbackError) as caught:
        client.feedback(response.request_id, score)
    assert repr(score) in str(caught.value)


def test_feedback_from_second_process(make_client, home):
    """Another process with the same SMARTLLM_HOME can send feedback for a request."""
    client = make_client()
    response = client.complete(PROMPT)
    code = (
        "import sys; from smartllm import Client; "
        "Client().feedback(sys.argv[1], 0.5, source='later')"
    )
    subprocess.run(
        [sys.executable, "-c", code, response.request_id],
        check=True,
        env={**__import__("os").environ, "SMARTLLM_HOME": str(home)},
        timeout=60,
    )
    connection = sqlite3.connect(home / "log.sqlite3")
    rows = connection.execute("SELECT request_id, score, source FROM feedback").fetchall()
    connection.close()
    assert rows == [(response.request_id, 0.5, "later")]


def test_log_write_failure_does_not_fail_completion(make_client, home, caplog):
    """A failed log write returns the response, warns and is counted."""
    client = make_client()
    client.complete(PROMPT)
    connection = sqlite3.connect(home / "log.sqlite3")
    connection.execute("DROP TABLE requests")
    connection.commit()
    connection.close()
    response = client.complete(PROMPT)
    assert response.text
    assert client.log_write_failures == 1
    assert "log write" in caplog.text


def test_status_totals(make_client):
    """status() counts requests, feedback and per-model cost."""
    client = make_client()
    first = client.complete(PROMPT, models=["openai/cheap"])
    client.complete(PROMPT, models=["openai/cheap"])
    client.feedback(first.request_id, 1.0)
    report = client.status()
    assert report["requests"] == 2
    assert report["feedback"] == 1
    assert report["per_model"]["openai/cheap"]["requests"] == 2
    assert report["per_model"]["openai/cheap"]["cost"] == pytest.approx(2 * first.cost)
    assert report["policy_version"].startswith("custom-")
    assert report["log_write_failures"] == 0


def test_threads_share_store(make_client, log_rows):
    """Completions from several threads all land in the log."""
    from concurrent.futures import ThreadPoolExecutor

    client = make_client()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: client.complete(f"{PROMPT} {i}"), range(8)))
    assert len(log_rows()) == 8


def test_client_construction_is_lazy(home):
    """Client() opens no log file and loads no router."""
    client = Client()
    assert not (home / "log.sqlite3").exists()
    assert client._routers is None
