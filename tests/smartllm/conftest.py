"""Fixtures shared by the client tests: a local server, a test router, a client.

Every test that makes a completion talks to :class:`OpenAIServer` on
127.0.0.1 through litellm; no test reaches a real provider.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

from smartllm import Client  # noqa: E402
from smartllm.testing import OpenAIServer, build_router  # noqa: E402
from shared import ANSWERS, OUTPUT_TOKENS, POOL, PRICES, QUALITY, pool_entries  # noqa: E402

@pytest.fixture(scope="session")
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(answers=ANSWERS) as running:
        yield running


@pytest.fixture(autouse=True)
def _clean_server(request: pytest.FixtureRequest) -> Iterator[None]:
    if "server" in request.fixturenames:
        request.getfixturevalue("server").reset()
    yield
    if "server" in request.fixturenames:
        request.getfixturevalue("server").clear_failures()


@pytest.fixture(scope="session")
def router_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_router(
        tmp_path_factory.mktemp("router"),
        POOL,
        quality=QUALITY,
        prices=PRICES,
        output_tokens=OUTPUT_TOKENS,
    )


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh SMARTLLM_HOME for the test."""
    directory = tmp_path / "home"
    monkeypatch.setenv("SMARTLLM_HOME", str(directory))
    for name in (
        "SMARTLLM_BUDGET",
        "SMARTLLM_WILLINGNESS_TO_PAY",
        "SMARTLLM_EXPLORATION",
        "SMARTLLM_ROUTER",
        "SMARTLLM_LOG_PROMPTS",
    ):
        monkeypatch.delenv(name, raising=False)
    return directory


@pytest.fixture
def make_client(
    server: OpenAIServer, router_dir: Path, home: Path
) -> Iterator[Callable[..., Client]]:
    """Build clients against the local server with short timeouts and backoffs."""
    clients: list[Client] = []

    def factory(**overrides: object) -> Client:
        options: dict[str, object] = {
            "models": pool_entries(server),
            "router": router_dir,
            "random_state": 0,
            "timeout": 5.0,
            "retry_base_delay": 0.01,
            "max_retry_delay": 0.5,
        }
        options.update(overrides)
        client = Client(**options)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()


@pytest.fixture
def log_rows(home: Path) -> Callable[[], list[dict]]:
    """Read every row of the requests table of the test's log."""
    import sqlite3

    def read() -> list[dict]:
        connection = sqlite3.connect(home / "log.sqlite3")
        connection.row_factory = sqlite3.Row
        try:
            rows = connection.execute("SELECT * FROM requests ORDER BY created_at").fetchall()
        finally:
            connection.close()
        return [dict(row) for row in rows]

    return read
