"""Storage trouble: a read-only or full log never fails a completion.

The tests run as root, where ``chmod`` does not stop writes, so they make the
log unwritable in ways that hold for root too:

- a data directory below a regular file, which fails with ENOTDIR;
- ``PRAGMA query_only = ON`` on the client's own connection, which makes
  SQLite reject every write as if the file were read-only;
- ``PRAGMA max_page_count`` set to the current page count, which makes SQLite
  report "database or disk is full" as on a full file system;
- ``RLIMIT_FSIZE`` in a child process, so that the kernel itself rejects writes
  that grow a file past 64 KiB (EFBIG), as on a small, full file system.

In each case completions succeed, each failed write logs a counted failure,
one WARNING is emitted for a run of failures, and writes carry on once the
storage works again.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from smartllm import Client, LogStoreError

from shared import pool_entries

PROMPT = "Name a colour of the rainbow."
TESTS_DIR = Path(__file__).parent


def _failure_warnings(caplog) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and "log write" in r.getMessage()
    ]


def test_data_dir_below_file_completes(tmp_path, monkeypatch, server, router_dir, caplog):
    """With SMARTLLM_HOME below a regular file, completions succeed and failures are counted."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where a directory should be")
    monkeypatch.setenv("SMARTLLM_HOME", str(blocker / "home"))
    client = Client(models=pool_entries(server), router=router_dir, retry_base_delay=0.01)

    with caplog.at_level(logging.WARNING, logger="smartllm"):
        responses = [client.complete(PROMPT) for _ in range(3)]

    assert all(r.text for r in responses)
    assert client.log_write_failures == 3
    assert len(_failure_warnings(caplog)) == 1
    assert "SMARTLLM_HOME" in _failure_warnings(caplog)[0].getMessage()


def test_feedback_on_unwritable_log_raises_typed(tmp_path, monkeypatch, server, router_dir):
    """Feedback that cannot be stored raises LogStoreError, never a bare OSError."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("SMARTLLM_HOME", str(blocker / "home"))
    client = Client(models=pool_entries(server), router=router_dir)
    response = client.complete(PROMPT)

    with pytest.raises(LogStoreError, match="SMARTLLM_HOME"):
        client.feedback(response.request_id, 1.0)


def test_query_only_log_completes(make_client, caplog, log_rows):
    """A log SQLite refuses to write to degrades, then recovers and stores the failure count."""
    client = make_client()
    client.complete(PROMPT)
    connection = client._store.connection()
    connection.execute("PRAGMA query_only = ON")

    with caplog.at_level(logging.WARNING, logger="smartllm"):
        responses = [client.complete(PROMPT) for _ in range(3)]

    assert all(r.text for r in responses)
    assert client.log_write_failures == 3
    assert len(_failure_warnings(caplog)) == 1
    assert len(log_rows()) == 1

    connection.execute("PRAGMA query_only = OFF")
    recovered = client.complete(PROMPT)

    assert [row["id"] for row in log_rows()][-1] == recovered.request_id
    assert client.status()["log_write_failures"] == 3


def test_feedback_on_query_only_log_raises_typed(make_client):
    """Feedback that SQLite refuses to write raises LogStoreError naming the request."""
    client = make_client()
    response = client.complete(PROMPT)
    client._store.connection().execute("PRAGMA query_only = ON")

    with pytest.raises(LogStoreError) as raised:
        client.feedback(response.request_id, 0.5)

    assert response.request_id in str(raised.value)


def test_full_log_completes(make_client, caplog, log_rows):
    """A log at its maximum page count degrades, then accepts writes once it may grow."""
    client = make_client()
    client.complete(PROMPT)
    connection = client._store.connection()
    (pages,) = connection.execute("PRAGMA page_count").fetchone()
    connection.execute(f"PRAGMA max_page_count = {pages}")

    with caplog.at_level(logging.WARNING, logger="smartllm"):
        responses = [client.complete(PROMPT) for _ in range(6)]

    assert all(r.text for r in responses)
    assert client.log_write_failures >= 1
    assert len(_failure_warnings(caplog)) == 1
    assert "full" in _failure_warnings(caplog)[0].getMessage()
    written = len(log_rows())
    assert written + client.log_write_failures == 7

    connection.execute("PRAGMA max_page_count = 1073741823")
    client.complete(PROMPT)

    assert len(log_rows()) == written + 1


_FSIZE_CHILD = textwrap.dedent(
    """
    import json, os, resource, signal, sys
    sys.path.insert(0, sys.argv[3])
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    from smartllm import Client, FeedbackError, LogStoreError
    from smartllm.testing import OpenAIServer
    from shared import pool_entries

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
    with OpenAIServer() as server:
        client = Client(models=pool_entries(server), router=sys.argv[1],
                        retry_base_delay=0.01, timeout=5.0)
        client.warm_up()
        client.complete("first request, before the limit")
        limit = int(sys.argv[2])
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        ids, feedback_errors = [], 0
        for i in range(25):
            response = client.complete("request number %d" % i)
            ids.append(response.request_id)
            # A request whose own log write failed is not in the log (FeedbackError).
            try:
                client.feedback(response.request_id, 1.0)
            except (LogStoreError, FeedbackError):
                feedback_errors += 1
        print(json.dumps({"ids": ids, "failures": client.log_write_failures,
                          "feedback_errors": feedback_errors}))
    """
)


def test_file_size_limit_completes(tmp_path, router_dir):
    """When the kernel rejects file growth (EFBIG), completions still succeed and the file stays sound."""
    home = tmp_path / "home"
    env = {"SMARTLLM_HOME": str(home), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", _FSIZE_CHILD, str(router_dir), str(64 * 1024), str(TESTS_DIR)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(report["ids"]) == 25
    assert report["failures"] >= 1
    assert "Traceback" not in result.stderr

    connection = sqlite3.connect(home / "log.sqlite3")
    try:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        (rows,) = connection.execute("SELECT count(*) FROM requests").fetchone()
    finally:
        connection.close()
    assert rows + report["failures"] == 26
