"""The smartllm route and status commands, run as subprocesses without API keys."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def _run(args, home, router_dir=None):
    env = {key: value for key, value in os.environ.items() if not key.endswith("_API_KEY")}
    env["SMARTLLM_HOME"] = str(home)
    if router_dir is not None:
        env["SMARTLLM_ROUTER"] = str(router_dir)
    return subprocess.run(
        [sys.executable, "-m", "smartllm._cli", *args],
        capture_output=True, text=True, env=env, timeout=120,
    )


def test_route_json(router_dir, home):
    """route --json prints the model, probabilities and predicted cost."""
    result = _run(["route", "Prove Fermat's little theorem", "--budget", "0.002", "--json"],
                  home, router_dir)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["model"] in report["probabilities"]
    assert sum(report["probabilities"].values()) == pytest.approx(1.0)
    assert report["predicted_cost"][report["model"]] <= 0.002
    assert report["budget"] == 0.002
    assert report["lam"] == 0.0


def test_route_text(router_dir, home):
    """route prints a table naming the chosen model."""
    result = _run(["route", "hello", "--willingness-to-pay", "0.05"], home, router_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("model: openai/")


def test_route_rejects_nan_budget(router_dir, home):
    """route --budget nan exits 1 with a message naming the value."""
    result = _run(["route", "hello", "--budget", "nan"], home, router_dir)
    assert result.returncode == 1
    assert "budget=nan" in result.stderr


def test_status_json(make_client, home):
    """status --json reports requests, feedback, per-model totals and failures."""
    client = make_client()
    response = client.complete("What is 2 + 2?", models=["openai/cheap"])
    client.feedback(response.request_id, 1.0)
    client.close()
    result = _run(["status", "--json"], home)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["requests"] == 1
    assert report["feedback"] == 1
    assert report["per_model"]["openai/cheap"]["requests"] == 1
    assert report["log_write_failures"] == 0
    assert "policy_version" in report
