"""Secrets and privacy: no API key, header or prompt text reaches the data directory.

The scans read every byte of every file under the data directory, including
SQLite's -wal and -shm files while the client still has them open, so text
written to a page that a later transaction freed is found too.
"""

from __future__ import annotations

import ast
import logging
import os
import sqlite3
import stat
from pathlib import Path

import pytest

import smartllm
from smartllm import AllModelsFailedError, Client, FeedbackError

from shared import POOL, PRICES

SECRET = "sk-test-SECRET123"
ENV_SECRETS = {
    "OPENAI_API_KEY": "sk-test-SECRET123-openai-env",
    "ANTHROPIC_API_KEY": "sk-ant-test-SECRET123-env",
    "GEMINI_API_KEY": "AIza-test-SECRET123-env",
}
HEADER_SECRET = "Bearer hdr-test-SECRET123"
PROMPT_CANARY = "PROMPT-CANARY-c0ffee-4242"
FORBIDDEN = [b"SECRET123", b"Authorization", b"authorization", b"Bearer ", PROMPT_CANARY.encode()]


@pytest.fixture
def secret_env(monkeypatch):
    for name, value in ENV_SECRETS.items():
        monkeypatch.setenv(name, value)


def _secret_entries(server, models=POOL):
    return {
        name: {
            "api_base": server.url,
            "api_key": SECRET,
            "extra_headers": {"X-Test-Authorization": HEADER_SECRET},
        }
        for name in models
    }


def _scan(directory: Path, forbidden: list[bytes]) -> list[tuple[str, bytes]]:
    found = []
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            found += [(path.name, word) for word in forbidden if word in data]
    return found


def _run_traffic(client: Client, server) -> None:
    """Successes, a stream, a fallback, a total failure, feedback and a session."""
    response = client.complete(f"Tell me about {PROMPT_CANARY}.", session_id="s1")
    client.feedback(response.request_id, 1.0, source="thumbs")
    "".join(client.complete(f"Stream {PROMPT_CANARY}", stream=True))
    client.complete(
        messages=[
            {"role": "system", "content": f"system {PROMPT_CANARY}"},
            {"role": "user", "content": f"user {PROMPT_CANARY}"},
        ]
    )

    # A provider that echoes the key in its error message, as some do on a 401.
    server.fail("*", status=401, times=None, message=f"Incorrect API key provided: {SECRET}")
    with pytest.raises(AllModelsFailedError):
        client.complete(f"Fail {PROMPT_CANARY}")
    server.clear_failures()
    server.fail("strong", status=500, times=None, message=f"upstream saw Authorization: {HEADER_SECRET}")
    client.complete(f"Fallback {PROMPT_CANARY}", willingness_to_pay=1000.0)


def test_no_secret_or_prompt_in_data_dir(
    secret_env, server, router_dir, home, caplog
):
    """After varied traffic, no key, header or prompt text is in any file or log record."""
    client = Client(
        models=_secret_entries(server),
        router=router_dir,
        evaluator=lambda prompt, text: 0.5,
        retry_base_delay=0.01,
        max_retries=0,
        random_state=0,
    )
    with caplog.at_level(logging.DEBUG, logger="smartllm"):
        _run_traffic(client, server)

        open_files = _scan(home, FORBIDDEN)
        client.close()
        closed_files = _scan(home, FORBIDDEN)

    assert sorted(p.name for p in home.iterdir() if p.is_file())
    assert open_files == []
    assert closed_files == []
    assert "SECRET123" not in caplog.text
    assert PROMPT_CANARY not in caplog.text
    assert server.count() >= 5


def test_prompt_stored_with_log_prompts(server, router_dir, home):
    """With log_prompts=True the prompt is stored, which shows that the scan can find it."""
    client = Client(models=_secret_entries(server), router=router_dir, log_prompts=True)
    client.complete(f"Tell me about {PROMPT_CANARY}.")

    found = _scan(home, [PROMPT_CANARY.encode(), b"SECRET123"])
    client.close()

    assert ("log.sqlite3-wal", PROMPT_CANARY.encode()) in found or (
        "log.sqlite3",
        PROMPT_CANARY.encode(),
    ) in found
    assert not [hit for hit in found if hit[1] == b"SECRET123"]


def test_error_messages_redact_keys(secret_env, server, router_dir, home):
    """AllModelsFailedError shown to the caller does not repeat an echoed key."""
    client = Client(models=_secret_entries(server), router=router_dir, max_retries=0)
    server.fail("*", status=401, times=None, message=f"Incorrect API key provided: {SECRET}")

    with pytest.raises(AllModelsFailedError) as raised:
        client.complete("hello")

    assert "SECRET123" not in str(raised.value)
    assert "[REDACTED]" in str(raised.value)


def test_log_files_are_private(make_client, home):
    """The directory is 0700 and the database, WAL and shared-memory files are 0600."""
    client = make_client()
    client.complete("hello")

    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for name in ("log.sqlite3", "log.sqlite3-wal", "log.sqlite3-shm"):
        path = home / name
        assert path.exists(), name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name


def test_log_private_under_permissive_umask(make_client, home):
    """A umask of 000 does not widen the modes of the log files."""
    previous = os.umask(0)
    try:
        client = make_client()
        client.complete("hello")
    finally:
        os.umask(previous)

    for name in ("log.sqlite3", "log.sqlite3-wal", "log.sqlite3-shm"):
        assert stat.S_IMODE((home / name).stat().st_mode) == 0o600, name


# -- SQL injection -----------------------------------------------------------

# Formatted SQL that is allowed: PRAGMAs whose value is an int the code computes.
ALLOWED_FORMATTED_SQL = {
    'f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}"',
    'f"PRAGMA user_version = {step + 1}"',
}


def _formatted_sql_calls() -> list[str]:
    package = Path(smartllm.__file__).parent
    offenders = []
    for path in sorted(package.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(source)):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"execute", "executemany", "executescript"}
                and node.args
            ):
                continue
            sql = node.args[0]
            formatted = (
                isinstance(sql, ast.JoinedStr)
                or (isinstance(sql, ast.BinOp) and isinstance(sql.op, (ast.Mod, ast.Add)))
                or (
                    isinstance(sql, ast.Call)
                    and isinstance(sql.func, ast.Attribute)
                    and sql.func.attr == "format"
                )
            )
            segment = ast.get_source_segment(source, sql)
            if formatted and segment not in ALLOWED_FORMATTED_SQL:
                offenders.append(f"{path.name}:{node.lineno}: {segment}")
    return offenders


def test_sql_uses_parameters():
    """No execute() call in smartllm builds SQL with f-strings, % or format()."""
    assert _formatted_sql_calls() == []


INJECTION = "x'); DROP TABLE requests; --"


def test_injection_strings_stored_verbatim(server, router_dir, home):
    """Model names, session ids and feedback sources with SQL are stored as plain text."""
    evil_model = f"openai/evil{INJECTION}"
    entries = {
        "openai/cheap": {"api_base": server.url, "api_key": "k"},
        evil_model: {
            "api_base": server.url,
            "api_key": "k",
            "like": "openai/cheap",
            "price": {"input_per_token": PRICES["openai/cheap"][0], "output_per_token": 0.0},
        },
    }
    client = Client(models=entries, router=router_dir, random_state=0)

    response = client.complete("hello", models=[evil_model], session_id=INJECTION)
    client.feedback(response.request_id, 0.25, source=INJECTION)
    with pytest.raises(FeedbackError):
        client.feedback("x' OR '1'='1", 1.0)
    client.close()

    connection = sqlite3.connect(home / "log.sqlite3")
    try:
        row = connection.execute(
            "SELECT served_model, session_id FROM requests WHERE id = ?",
            (response.request_id,),
        ).fetchone()
        feedback = connection.execute("SELECT request_id, source FROM feedback").fetchall()
        tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master")}
    finally:
        connection.close()
    assert row == (evil_model, INJECTION)
    assert feedback == [(response.request_id, INJECTION)]
    assert {"requests", "feedback", "meta"} <= tables
