"""The README's examples run as documented against the local test server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("quickstart.py", "answered for $"),
        ("async_streaming.py", "request "),
    ],
)
def test_example_runs_locally(tmp_path, script, expected):
    """Each example completes a routed request with --local and prints the result."""
    env = {**os.environ, "SMARTLLM_HOME": str(tmp_path), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--local"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert expected in result.stdout
    assert (tmp_path / "log.sqlite3").is_file()
