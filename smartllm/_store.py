"""The local request log: SQLite in WAL mode under the data directory.

The file is created with mode 0600 in a directory created with mode 0700. Each
thread gets its own connection. ``PRAGMA user_version`` stores the schema
version, and :data:`MIGRATIONS` brings an older file up to date on open.

Tables:
    requests   one row per routed request (see :data:`REQUEST_COLUMNS`)
    feedback   every score received; the latest per request counts
    meta       counters that outlive the process (log write failures)
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ._errors import FeedbackError, LogStoreError

logger = logging.getLogger(__name__)

LOG_FILE_NAME = "log.sqlite3"
BUSY_TIMEOUT_MS = 5000

# Column name and SQL type of the requests table, in order.
REQUEST_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "TEXT PRIMARY KEY"),  # uuid4 hex
    ("created_at", "REAL NOT NULL"),  # Unix time in seconds
    ("policy_version", "TEXT NOT NULL"),
    ("embedder_sha256", "TEXT NOT NULL"),
    ("features", "TEXT NOT NULL"),  # feature set name, as in router.json
    ("embedding", "BLOB NOT NULL"),  # router feature row, float16 little-endian
    ("prompt_sha256", "TEXT NOT NULL"),
    ("prompt", "TEXT"),  # only with log_prompts=True
    ("lam", "REAL NOT NULL"),  # quality points per USD
    ("willingness_to_pay", "REAL"),  # USD, NULL when λ came from a budget alone
    ("budget", "REAL"),  # USD, NULL for no ceiling
    ("allowed_models", "TEXT NOT NULL"),  # JSON list
    ("probabilities", "TEXT NOT NULL"),  # JSON {model: probability}
    ("predictions", "TEXT NOT NULL"),  # JSON {model: {quality, cost, output_tokens}}
    ("chosen_model", "TEXT NOT NULL"),
    ("propensity", "REAL NOT NULL"),  # probability of chosen_model
    ("served_model", "TEXT"),  # NULL when every model failed
    ("fallback_chain", "TEXT NOT NULL"),  # JSON list of models tried, in order
    ("over_budget", "INTEGER NOT NULL"),  # 1 when no model fitted the budget
    ("session_id", "TEXT"),
    ("session_pinned", "INTEGER NOT NULL"),  # 1 when the session's model was reused
    ("stream", "INTEGER NOT NULL"),
    ("status", "TEXT NOT NULL"),  # ok, error or abandoned
    ("input_tokens", "INTEGER"),
    ("output_tokens", "INTEGER"),
    ("tokens_estimated", "INTEGER NOT NULL"),  # 1 when the provider sent no usage
    ("cost", "REAL"),  # USD
    ("predicted_cost", "REAL NOT NULL"),  # USD, of chosen_model
    ("latency_ms", "REAL"),  # provider time, from first attempt to last byte
    ("routing_ms", "REAL NOT NULL"),  # embedding, policy and sampling
    ("error", "TEXT"),
)


def _migrate_to_1(connection: sqlite3.Connection) -> None:
    columns = ", ".join(f"{name} {kind}" for name, kind in REQUEST_COLUMNS)
    statements = [
        f"CREATE TABLE requests ({columns})",
        "CREATE INDEX requests_created_at ON requests (created_at)",
        "CREATE INDEX requests_session ON requests (session_id, created_at)",
        "CREATE TABLE feedback ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " request_id TEXT NOT NULL REFERENCES requests (id),"
        " score REAL NOT NULL,"
        " source TEXT,"
        " created_at REAL NOT NULL)",
        "CREATE INDEX feedback_request ON feedback (request_id, id)",
        "CREATE VIEW latest_feedback AS"
        " SELECT f.request_id, f.score, f.source, f.created_at FROM feedback AS f"
        " WHERE f.id = (SELECT max(id) FROM feedback WHERE request_id = f.request_id)",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        "INSERT INTO meta (key, value) VALUES ('log_write_failures', 0)",
    ]
    # execute() rather than executescript(), which would commit the open
    # transaction and let two processes migrate the same file at once.
    for statement in statements:
        connection.execute(statement)


# MIGRATIONS[i] moves a file from schema version i to i + 1.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_migrate_to_1]
SCHEMA_VERSION = len(MIGRATIONS)

_INSERT_REQUEST = (
    f"INSERT INTO requests ({', '.join(n for n, _ in REQUEST_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in REQUEST_COLUMNS)})"
)


class LogStore:
    """Read and write the request log at ``path``.

    The file and its directory are created on first use. Safe to share
    between threads, because every thread opens its own connection.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._ready = False
        self._pending_failures = 0

    def connection(self) -> sqlite3.Connection:
        """Return this thread's connection, opening and migrating the file if needed."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            return connection
        with self._lock:
            if not self._ready:
                self._prepare_file()
            connection = self._connect()
            if not self._ready:
                self._migrate(connection)
                self._ready = True
            self._connections.append(connection)
        self._local.connection = connection
        return connection

    def _prepare_file(self) -> None:
        directory = self.path.parent
        try:
            if not directory.exists():
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Create the file with mode 0600 before SQLite does, so that it never
            # exists with the umask's permissions. SQLite gives the WAL and
            # shared-memory files the database file's mode.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
        except OSError as exc:
            raise LogStoreError(
                f"cannot create the log {self.path}: {exc}; set SMARTLLM_HOME to a "
                "writable directory"
            ) from exc

    def _connect(self) -> sqlite3.Connection:
        try:
            connection = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False
            )
            connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            connection.execute("PRAGMA journal_mode = WAL")
            # NORMAL is durable across application crashes in WAL mode; a power
            # loss may drop the last transactions.
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            raise LogStoreError(f"cannot open the log {self.path}: {exc}") from exc
        return connection

    def _migrate(self, connection: sqlite3.Connection) -> None:
        try:
            with connection:
                connection.execute("BEGIN IMMEDIATE")
                (version,) = connection.execute("PRAGMA user_version").fetchone()
                if version > SCHEMA_VERSION:
                    raise LogStoreError(
                        f"the log {self.path} has schema version {version}, newer than "
                        f"{SCHEMA_VERSION}; upgrade smartllm or set SMARTLLM_HOME"
                    )
                for step in range(version, SCHEMA_VERSION):
                    MIGRATIONS[step](connection)
                    connection.execute(f"PRAGMA user_version = {step + 1}")
                    logger.info("log %s migrated to schema version %d", self.path, step + 1)
        except sqlite3.Error as exc:
            raise LogStoreError(f"cannot migrate the log {self.path}: {exc}") from exc

    def insert_request(self, record: Mapping[str, Any]) -> None:
        """Insert one request row; keys are the names in :data:`REQUEST_COLUMNS`."""
        values = [_to_sql(record.get(name)) for name, _ in REQUEST_COLUMNS]
        connection = self.connection()
        with self._lock:
            failures, self._pending_failures = self._pending_failures, 0
        try:
            with connection:
                connection.execute(_INSERT_REQUEST, values)
                if failures:
                    connection.execute(
                        "UPDATE meta SET value = value + ? WHERE key = 'log_write_failures'",
                        (failures,),
                    )
        except BaseException:
            with self._lock:
                self._pending_failures += failures  # the rollback dropped the update
            raise

    def count_write_failure(self) -> None:
        """Remember a failed write; it is added to the file's count on the next success."""
        with self._lock:
            self._pending_failures += 1

    def add_feedback(self, request_id: str, score: float, source: str | None) -> None:
        """Record a score in [0, 1] for a logged request."""
        if not isinstance(request_id, str) or not request_id or not _is_utf8(request_id):
            raise FeedbackError(f"request_id={request_id!r} is invalid; pass Response.request_id")
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            raise FeedbackError(f"score={score!r} is not a number; pass a float in [0, 1]")
        if not math.isfinite(score) or not 0.0 <= score <= 1.0:
            raise FeedbackError(f"score={score!r} is outside [0, 1]; pass a float in [0, 1]")
        if source is not None and not isinstance(source, str):
            raise FeedbackError(f"source={source!r} is not a str; pass a short label or None")
        if source is not None and not _is_utf8(source):
            raise FeedbackError(
                f"source={source!r} contains a lone surrogate, which UTF-8 cannot encode; "
                "pass a valid str label"
            )

        connection = self.connection()
        try:
            with connection:
                found = connection.execute(
                    "SELECT 1 FROM requests WHERE id = ?", (request_id,)
                ).fetchone()
                if found is None:
                    raise FeedbackError(
                        f"request id {request_id!r} is not in the log {self.path}; check "
                        "the id, that SMARTLLM_HOME matches the process that made the "
                        "request, and that its log write did not fail"
                    )
                connection.execute(
                    "INSERT INTO feedback (request_id, score, source, created_at) "
                    "VALUES (?, ?, ?, ?)",
                    (request_id, float(score), source, time.time()),
                )
        except sqlite3.Error as exc:
            raise LogStoreError(
                f"cannot store feedback for request {request_id!r} in the log "
                f"{self.path}: {exc}; check that the disk has space and SMARTLLM_HOME "
                "is writable, then send it again"
            ) from exc

    def session_model(self, session_id: str) -> str | None:
        """Return the model that last served a session, or None."""
        row = self.connection().execute(
            "SELECT served_model FROM requests WHERE session_id = ? AND served_model "
            "IS NOT NULL ORDER BY created_at DESC LIMIT 1",
            (session_id,),
        ).fetchone()
        return row[0] if row else None

    def status(self) -> dict[str, Any]:
        """Return request and feedback counts, per-model totals and write failures."""
        connection = self.connection()
        (requests,) = connection.execute("SELECT count(*) FROM requests").fetchone()
        (feedback,) = connection.execute("SELECT count(*) FROM feedback").fetchone()
        (scored,) = connection.execute("SELECT count(*) FROM latest_feedback").fetchone()
        (failures,) = connection.execute(
            "SELECT value FROM meta WHERE key = 'log_write_failures'"
        ).fetchone()

        per_model = {}
        for model, count, cost in connection.execute(
            "SELECT served_model, count(*), coalesce(sum(cost), 0) FROM requests "
            "WHERE served_model IS NOT NULL GROUP BY served_model ORDER BY served_model"
        ):
            per_model[model] = {"requests": count, "cost": cost}
        versions = {
            version: count
            for version, count in connection.execute(
                "SELECT policy_version, count(*) FROM requests GROUP BY policy_version"
            )
        }
        return {
            "requests": requests,
            "feedback": feedback,
            "requests_with_feedback": scored,
            "log_write_failures": failures + self._pending_failures,
            "per_model": per_model,
            "policy_versions": versions,
        }

    def close(self) -> None:
        """Close every connection this store opened."""
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _to_sql(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return value
