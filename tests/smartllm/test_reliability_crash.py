"""Crash: a process killed with SIGKILL while writing leaves a sound, usable log.

A child process completes requests and sends feedback from several threads
as fast as it can and prints each id once the call has returned. The test
kills it with SIGKILL while it writes. Then it checks that the file passes
``PRAGMA integrity_check`` and that every request and feedback the child had
returned is in the log, because WAL with ``synchronous=NORMAL`` survives a
process crash (only a power loss may drop the last transactions). Last, a
new client logs a request and its feedback on the same file.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from smartllm import Client

from shared import pool_entries

TESTS_DIR = Path(__file__).parent

# argv: server URL, router dir, tests dir.
CHILD = textwrap.dedent(
    """
    import json, os, sys, threading
    sys.path.insert(0, sys.argv[3])
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    from smartllm import Client
    from shared import POOL

    entries = {name: {"api_base": sys.argv[1], "api_key": "k"} for name in POOL}
    client = Client(models=entries, router=sys.argv[2], retry_base_delay=0.01)
    client.warm_up()
    lock = threading.Lock()

    def work(index):
        i = 0
        while True:
            response = client.complete("crash thread %d request %d" % (index, i))
            with lock:
                print(json.dumps({"request": response.request_id}), flush=True)
            client.feedback(response.request_id, 0.75, source="crash")
            with lock:
                print(json.dumps({"feedback": response.request_id}), flush=True)
            i += 1

    for index in range(3):
        threading.Thread(target=work, args=(index,), daemon=True).start()
    threading.Event().wait()
    """
)


def _wait_for_lines(path: Path, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.read_text().count("\n") >= count:
            return
        time.sleep(0.1)


KILLS = 2


def test_sigkill_during_writes(server, router_dir, home):
    """After SIGKILLs mid-write the log is intact, keeps all returned work and accepts more."""
    env = dict(os.environ, SMARTLLM_HOME=str(home))
    returned_requests: set[str] = set()
    returned_feedback: set[str] = set()

    for kill in range(KILLS):
        stdout_path = home.parent / f"crash-{kill}.out"
        stderr_path = home.parent / f"crash-{kill}.err"
        with open(stdout_path, "w") as stdout, open(stderr_path, "w") as stderr_file:
            child = subprocess.Popen(
                [sys.executable, "-c", CHILD, server.url, str(router_dir), str(TESTS_DIR)],
                stdout=stdout,
                stderr=stderr_file,
                text=True,
                env=env,
            )
            try:
                _wait_for_lines(stdout_path, 30, timeout=90)
            finally:
                os.kill(child.pid, signal.SIGKILL)
                child.wait(timeout=30)
        # A line cut by the kill has no newline and is dropped.
        lines = stdout_path.read_text().split("\n")[:-1]
        records = [json.loads(line) for line in lines]
        stderr = stderr_path.read_text()

        assert child.returncode == -signal.SIGKILL
        assert len(records) >= 10, stderr[-3000:]
        returned_requests |= {r["request"] for r in records if "request" in r}
        returned_feedback |= {r["feedback"] for r in records if "feedback" in r}

    connection = sqlite3.connect(home / "log.sqlite3")
    try:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        logged = {row[0] for row in connection.execute("SELECT id FROM requests")}
        scored = {
            row[0]
            for row in connection.execute("SELECT request_id FROM feedback WHERE source = 'crash'")
        }
        (duplicates,) = connection.execute(
            "SELECT count(*) - count(DISTINCT request_id) FROM feedback"
        ).fetchone()
    finally:
        connection.close()
    assert returned_requests <= logged
    assert returned_feedback <= scored
    assert duplicates == 0

    client = Client(models=pool_entries(server), router=router_dir, retry_base_delay=0.01)
    response = client.complete("after the crash")
    client.feedback(response.request_id, 1.0)
    status = client.status()
    client.close()

    assert status["requests"] == len(logged) + 1
    assert status["log_write_failures"] == 0
    assert client.log_write_failures == 0
