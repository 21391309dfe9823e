"""The offline learn loop of examples/: replay server, client, feedback and retrain."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnx")
pytest.importorskip("matplotlib")

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
sys.path.insert(0, str(EXAMPLES))

from replay_server import FailureRates, ReplayServer, load_replay_data  # noqa: E402

REQUESTS = 160
RETRAIN_EVERY = 80


@pytest.fixture(scope="module")
def replay_data():
    return load_replay_data()


@pytest.fixture()
def server(replay_data):
    with ReplayServer(replay_data, failures=FailureRates(), seed=0) as running:
        yield running


def _post(server, payload):
    import httpx

    return httpx.post(f"{server.url}/chat/completions", json=payload, timeout=10)


def test_replay_data_covers_tasks_and_models(replay_data):
    """The committed slice has all three tasks and a record per model and prompt."""
    tasks = {prompt.task for prompt in replay_data.prompts}
    assert tasks == {"gsm8k", "math-l5", "crux"}
    assert "gpt-4o-mini-2024-07-18" in replay_data.models
    for prompt in replay_data.prompts:
        assert prompt.input_tokens > 0
        # Mixtral has no published MATH level 5 results; every other model answers all.
        expected = len(replay_data.models) - (prompt.task == "math-l5")
        assert len(prompt.answers) == expected, prompt.id


def test_server_returns_recorded_answer(server, replay_data):
    """A known prompt gets the model's recorded text and recorded token usage."""
    prompt = replay_data.prompts[0]
    model = "gemini/gemini-1.5-flash"
    response = _post(server, {"model": model,
                              "messages": [{"role": "user", "content": prompt.text}]})
    assert response.status_code == 200
    body = response.json()
    assert body["choices"][0]["message"]["content"] == prompt.answers[model].output
    assert body["usage"]["prompt_tokens"] == prompt.input_tokens
    assert body["usage"]["completion_tokens"] == prompt.answers[model].output_tokens


def test_server_unknown_prompt_is_404(server):
    """An unrecorded prompt gets HTTP 404 with an OpenAI error body."""
    response = _post(server, {"model": "gemini/gemini-1.5-flash",
                              "messages": [{"role": "user", "content": "not recorded"}]})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "prompt_not_found"
    assert "not in the replay data" in error["message"]


def test_server_missing_model_answer_is_404(server, replay_data):
    """Mixtral has no MATH level 5 record, so that pair gets model_not_found."""
    prompt = next(p for p in replay_data.prompts if p.task == "math-l5")
    response = _post(server, {"model": "together_ai/mistralai/Mixtral-8x7B-Instruct-v0.1",
                              "messages": [{"role": "user", "content": prompt.text}]})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


def test_server_stream_joins_to_recorded_text(server, replay_data):
    """Streamed deltas join to the recorded text, and the last chunk has the usage."""
    prompt = replay_data.prompts[-1]
    model = "gpt-4o-mini-2024-07-18"
    response = _post(server, {
        "model": f"openai/{model}", "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": prompt.text}],
    })
    assert response.status_code == 200
    events = [line[len("data: "):] for line in response.text.splitlines()
              if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == prompt.answers[model].output
    assert chunks[-1]["usage"]["completion_tokens"] == prompt.answers[model].output_tokens


def test_server_injected_failures(server, replay_data):
    """Queued failures answer 500, then 429 with Retry-After, then the record again."""
    prompt = replay_data.prompts[0]
    model = "gpt-4o-2024-05-13"
    server.fail_next(model, 500)
    server.fail_next(model, 429)
    payload = {"model": model, "messages": [{"role": "user", "content": prompt.text}]}

    first = _post(server, payload)
    assert first.status_code == 500
    assert first.json()["error"]["type"] == "server_error"
    second = _post(server, payload)
    assert second.status_code == 429
    assert second.headers["Retry-After"] == "1"
    third = _post(server, payload)
    assert third.status_code == 200


def _start_router_args(tmp_path: Path) -> list[str]:
    """Return --router for a generated router when the bundled one is not there yet."""
    from smartllm._paths import asset_path

    if asset_path("router.onnx").is_file():
        return []
    from smartllm.testing import build_router

    data = load_replay_data()
    pool = [m for m in data.models if m != "gpt-4o-mini-2024-07-18"]
    directory = build_router(tmp_path / "start_router", pool,
                             prices={m: data.price(m) for m in pool})
    return ["--router", str(directory)]


def test_learn_loop_logs_feedback_and_retrains(tmp_path):
    """160 requests: each is logged with feedback, and a forced retrain installs a router.

    The retrain splits its 80 rows by a hash of random request ids. With a
    holdout of 0.5, fewer than 20 rows land on a side with probability below 1e-5.
    """
    home = tmp_path / "home"
    result_path = tmp_path / "loop.json"
    plot_path = tmp_path / "loop.png"
    command = [
        sys.executable, str(EXAMPLES / "learn_loop.py"),
        "--requests", str(REQUESTS), "--retrain-every", str(RETRAIN_EVERY),
        "--home", str(home), "--json", str(result_path), "--plot", str(plot_path),
        "--min-feedback", "3", "--force", "--eval-prompts", "30", "--seed", "1",
        "--retrain-arg=--holdout=0.5", "--retrain-arg=--bootstrap=200",
        "--retrain-arg=--epochs=20",
        *_start_router_args(tmp_path),
    ]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    completed = subprocess.run(command, capture_output=True, text=True, env=env,
                               timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]

    result = json.loads(result_path.read_text(encoding="utf-8"))
    phases = result["phases"]
    assert [phase["requests"] for phase in phases] == [RETRAIN_EVERY, RETRAIN_EVERY]
    for phase in phases:
        assert phase["failed_requests"] == 0
        assert 0.0 <= phase["mean_quality"] <= 1.0
        assert phase["mean_cost"] > 0.0
        assert phase["offline_evaluation"]["prompts"] == 30

    retrains = result["retrains"]
    assert len(retrains) == 1
    assert retrains[0]["exit_code"] == 0, retrains[0].get("error")
    assert retrains[0]["promoted"] is True
    assert phases[0]["retrain_before"] is None
    assert phases[1]["retrain_before"]["promoted"] is True
    assert phases[1]["retrain_before"]["version"] == retrains[0]["version"]
    assert phases[1]["policy_version"] == retrains[0]["version"]
    assert phases[1]["policy_version"] != phases[0]["policy_version"]

    connection = sqlite3.connect(home / "log.sqlite3")
    try:
        (logged,) = connection.execute("SELECT count(*) FROM requests").fetchone()
        (ok,) = connection.execute(
            "SELECT count(*) FROM requests WHERE status = 'ok'").fetchone()
        (joined,) = connection.execute(
            "SELECT count(*) FROM requests JOIN latest_feedback "
            "ON latest_feedback.request_id = requests.id").fetchone()
    finally:
        connection.close()
    assert logged == REQUESTS
    assert ok == REQUESTS
    assert joined == REQUESTS
    assert plot_path.stat().st_size > 10_000
