"""Concurrency: processes and threads share one log without losing or doubling a row.

Two worker processes with two threads each, and two threads of the test
process, complete requests against the local server and send feedback on
their own requests. A third process sends feedback on every request it finds
in the log. Meanwhile the test process installs new router versions, which the
clients pick up from ``routers/CURRENT``. Afterwards every request and every
feedback is in the log exactly once, and no caller saw "database is locked".
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from smartllm import Client
from smartllm import _router
from smartllm.testing import build_router

from shared import POOL, PRICES, QUALITY, pool_entries

TESTS_DIR = Path(__file__).parent
REQUESTS_PER_THREAD = 4
WORKER_PROCESSES = 2
THREADS_PER_PROCESS = 2
PARENT_THREADS = 2
DEADLINE_S = 120

# Child processes run this; argv: mode, server URL, bundled router dir, tests dir.
CHILD = textwrap.dedent(
    """
    import json, logging, os, sqlite3, sys, threading, time
    sys.path.insert(0, sys.argv[4])
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    from pathlib import Path
    from smartllm import Client, _router
    from shared import POOL

    mode, url, bundled = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    _router.bundled_router_dir = lambda: bundled
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    entries = {name: {"api_base": url, "api_key": "k"} for name in POOL}
    client = Client(models=entries, timeout=10.0, retry_base_delay=0.01, random_state=None)
    client.warm_up()
    errors, print_lock = [], threading.Lock()

    def work(index):
        for i in range(int(os.environ["REQUESTS_PER_THREAD"])):
            try:
                stream = i % 3 == 2
                prompt = "worker %d thread %d request %d" % (os.getpid(), index, i)
                response = client.complete(prompt, stream=stream, session_id="s%d" % (i % 2))
                if stream:
                    "".join(response)
                client.feedback(response.request_id, 0.5, source="own")
                with print_lock:
                    print(json.dumps({"request": response.request_id}), flush=True)
            except Exception as exc:
                errors.append(repr(exc))

    if mode == "worker":
        threads = [threading.Thread(target=work, args=(t,)) for t in range(int(sys.argv[5]))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    else:
        expected, done = int(sys.argv[5]), set()
        deadline = time.monotonic() + float(os.environ["DEADLINE_S"])
        log = Path(os.environ["SMARTLLM_HOME"]) / "log.sqlite3"
        while len(done) < expected and time.monotonic() < deadline:
            try:
                reader = sqlite3.connect("file:%s?mode=ro" % log, uri=True, timeout=10)
                ids = [row[0] for row in reader.execute("SELECT id FROM requests")]
                reader.close()
            except sqlite3.OperationalError:
                ids = []  # the log does not exist yet
            for request_id in ids:
                if request_id not in done:
                    try:
                        client.feedback(request_id, 1.0, source="other")
                        done.add(request_id)
                    except Exception as exc:
                        errors.append(repr(exc))
            time.sleep(0.05)
        print(json.dumps({"feedback": sorted(done)}), flush=True)
    print(json.dumps({"errors": errors, "log_write_failures": client.log_write_failures}))
    """
)


def _install_versions(home: Path, count: int, stop: threading.Event) -> list[str]:
    """Install ``count`` router versions, using smartllm's installer when it exists."""
    try:
        from smartllm._versions import install_version, staging_directory
    except ImportError:  # the installer is not written yet: do what it does by hand
        install_version = staging_directory = None

    names = []
    for i in range(count):
        if stop.wait(1.0):
            break
        if install_version is not None:
            staged = staging_directory(home / "routers")
            build_router(staged, POOL, quality=QUALITY, prices=PRICES, seed=i + 1)
            names.append(install_version(staged, home / "routers").name)
        else:
            name = f"v{i + 1:04d}-manual"
            build_router(home / "routers" / name, POOL, quality=QUALITY, prices=PRICES, seed=i)
            temporary = home / "routers" / ".CURRENT.tmp"
            temporary.write_text(name + "\n")
            os.replace(temporary, home / "routers" / "CURRENT")
            names.append(name)
    return names


def _spawn(mode: str, server, bundled: Path, home: Path, last: int) -> subprocess.Popen:
    env = dict(
        os.environ,
        SMARTLLM_HOME=str(home),
        REQUESTS_PER_THREAD=str(REQUESTS_PER_THREAD),
        DEADLINE_S=str(DEADLINE_S),
    )
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, mode, server.url, str(bundled), str(TESTS_DIR), str(last)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _parse(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


@pytest.fixture
def bundled(tmp_path, monkeypatch):
    directory = build_router(tmp_path / "bundled", POOL, quality=QUALITY, prices=PRICES)
    monkeypatch.setattr(_router, "bundled_router_dir", lambda: directory)
    return directory


def test_concurrent_processes_log_exactly_once(server, bundled, home, caplog):
    """Concurrent completions, feedback and router installs leave one row per event."""
    total = (WORKER_PROCESSES * THREADS_PER_PROCESS + PARENT_THREADS) * REQUESTS_PER_THREAD
    children = [
        _spawn("worker", server, bundled, home, THREADS_PER_PROCESS)
        for _ in range(WORKER_PROCESSES)
    ]
    feedback_child = _spawn("feedback", server, bundled, home, total)

    client = Client(models=pool_entries(server), timeout=10.0, retry_base_delay=0.01)
    parent_ids: list[str] = []
    parent_errors: list[str] = []

    def parent_work(index: int) -> None:
        for i in range(REQUESTS_PER_THREAD):
            try:
                response = client.complete(f"parent thread {index} request {i}")
                client.feedback(response.request_id, 0.5, source="own")
                parent_ids.append(response.request_id)
            except Exception as exc:  # collected and asserted below
                parent_errors.append(repr(exc))

    stop = threading.Event()
    installed: list[str] = []
    installer = threading.Thread(target=lambda: installed.extend(_install_versions(home, 3, stop)))
    threads = [threading.Thread(target=parent_work, args=(t,)) for t in range(PARENT_THREADS)]
    with caplog.at_level(logging.WARNING, logger="smartllm"):
        installer.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        outputs = [child.communicate(timeout=DEADLINE_S + 30) for child in children]
        feedback_output = feedback_child.communicate(timeout=DEADLINE_S + 30)
        stop.set()
        installer.join()
    client.close()

    child_ids = []
    for child, (stdout, stderr) in zip(children, outputs, strict=True):
        assert child.returncode == 0, stderr[-3000:]
        assert "database is locked" not in stderr
        records = _parse(stdout)
        child_ids += [r["request"] for r in records if "request" in r]
        assert records[-1]["errors"] == []
        assert records[-1]["log_write_failures"] == 0
    assert feedback_child.returncode == 0, feedback_output[1][-3000:]
    assert "database is locked" not in feedback_output[1]
    feedback_records = _parse(feedback_output[0])
    assert feedback_records[-1]["errors"] == []
    assert parent_errors == []
    assert client.log_write_failures == 0
    assert "database is locked" not in caplog.text

    all_ids = child_ids + parent_ids
    assert len(all_ids) == total
    assert len(set(all_ids)) == total

    connection = sqlite3.connect(home / "log.sqlite3")
    try:
        logged = [row[0] for row in connection.execute("SELECT id FROM requests")]
        own = connection.execute(
            "SELECT request_id, count(*) FROM feedback WHERE source = 'own' GROUP BY request_id"
        ).fetchall()
        other = connection.execute(
            "SELECT request_id, count(*) FROM feedback WHERE source = 'other' "
            "GROUP BY request_id"
        ).fetchall()
        versions = {row[0] for row in connection.execute("SELECT policy_version FROM requests")}
        integrity = connection.execute("PRAGMA integrity_check").fetchone()
    finally:
        connection.close()

    assert integrity == ("ok",)
    assert sorted(logged) == sorted(all_ids)
    assert dict(own) == {request_id: 1 for request_id in all_ids}
    assert dict(other) == {request_id: 1 for request_id in all_ids}
    assert sorted(feedback_records[0]["feedback"]) == sorted(all_ids)
    assert installed
    assert all(v.startswith("bundled-") or v in installed for v in versions)
    assert versions & set(installed), "no client picked up an installed router"


# Child for the store stress test; argv: tests dir, threads, rows per thread.
STORE_CHILD = textwrap.dedent(
    """
    import json, os, sys, threading, uuid
    sys.path.insert(0, sys.argv[1])
    from pathlib import Path
    from smartllm._store import LogStore
    from test_reliability_concurrency import minimal_record

    store = LogStore(Path(os.environ["SMARTLLM_HOME"]) / "log.sqlite3")
    ids, errors, lock = [], [], threading.Lock()

    def work():
        for _ in range(int(sys.argv[3])):
            request_id = uuid.uuid4().hex
            try:
                store.insert_request(minimal_record(request_id))
                store.add_feedback(request_id, 1.0, "stress")
                with lock:
                    ids.append(request_id)
            except Exception as exc:
                errors.append(repr(exc))

    threads = [threading.Thread(target=work) for _ in range(int(sys.argv[2]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"ids": ids, "errors": errors}))
    """
)


def minimal_record(request_id: str) -> dict:
    """Return a request row with every NOT NULL column set."""
    return {
        "id": request_id,
        "created_at": time.time(),
        "policy_version": "stress",
        "embedder_sha256": "0" * 64,
        "features": "minilm384",
        "embedding": b"\x00" * 768,
        "prompt_sha256": "0" * 64,
        "lam": 0.0,
        "allowed_models": ["m"],
        "probabilities": {"m": 1.0},
        "predictions": {},
        "chosen_model": "m",
        "propensity": 1.0,
        "fallback_chain": ["m"],
        "over_budget": False,
        "session_pinned": False,
        "stream": False,
        "status": "ok",
        "tokens_estimated": False,
        "predicted_cost": 0.0,
        "routing_ms": 0.0,
    }


def test_store_stress_never_locked(home):
    """Processes hammering the log with writes and feedback never see 'database is locked'."""
    processes, threads, rows = 4, 8, 30
    env = dict(os.environ, SMARTLLM_HOME=str(home))
    children = [
        subprocess.Popen(
            [sys.executable, "-c", STORE_CHILD, str(TESTS_DIR), str(threads), str(rows)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(processes)
    ]
    outputs = [child.communicate(timeout=120) for child in children]

    ids = []
    for child, (stdout, stderr) in zip(children, outputs, strict=True):
        assert child.returncode == 0, stderr[-3000:]
        report = _parse(stdout)[-1]
        assert report["errors"] == []
        ids += report["ids"]
    assert len(ids) == processes * threads * rows

    connection = sqlite3.connect(home / "log.sqlite3")
    try:
        logged = sorted(row[0] for row in connection.execute("SELECT id FROM requests"))
        (feedback,) = connection.execute("SELECT count(*) FROM feedback").fetchone()
    finally:
        connection.close()
    assert logged == sorted(ids)
    assert feedback == len(ids)
