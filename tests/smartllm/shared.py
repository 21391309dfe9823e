"""Constants and helpers shared by the client tests and their fixtures."""

from __future__ import annotations

from smartllm.testing import OpenAIServer

POOL = ["openai/cheap", "openai/mid", "openai/strong"]
# (input, output) USD per token.
PRICES = {
    "openai/cheap": (1e-7, 4e-7),
    "openai/mid": (1e-6, 4e-6),
    "openai/strong": (5e-6, 1.5e-5),
}
QUALITY = {"openai/cheap": 0.4, "openai/mid": 0.6, "openai/strong": 0.8}
OUTPUT_TOKENS = 200.0
ANSWERS = {"cheap": "cheap answer", "mid": "mid answer", "strong": "strong answer"}


def pool_entries(server: OpenAIServer, models: list[str] = POOL) -> dict[str, dict]:
    return {name: {"api_base": server.url, "api_key": "test-key"} for name in models}
