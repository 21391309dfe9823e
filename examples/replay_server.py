"""Replay recorded model answers through an OpenAI-compatible server on 127.0.0.1.

    python examples/replay_server.py --port 8765 --latency-ms 50 --error-rate 0.02

``POST /v1/chat/completions`` returns, for the requested model and the text
of the last user message, the answer that model gave to that prompt in the
recorded data (``examples/replay_data``, built by
``scripts/build_replay_slice.py``). The reported usage is the recorded token
counts of the prompt and the answer. ``"stream": true`` returns the same text
as server-sent events, with a final usage chunk when the request sets
``stream_options.include_usage``. ``GET /v1/models`` lists the models.

A prompt or model without a record gets HTTP 404 with an OpenAI error body.
Added latency and random failures (HTTP 500, HTTP 429 with ``Retry-After``,
and answers delayed past the client's timeout) are options. This is a
separate server from ``smartllm.testing.OpenAIServer`` because that server
returns one text per model, whereas a replay must look up the prompt.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import random
import re
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from smartllm.testing.openai_server import chunk_body, completion_body

logger = logging.getLogger("replay_server")

DEFAULT_DATA_DIR = Path(__file__).resolve().parent / "replay_data"
# litellm's OpenAI-compatible provider sends "openai/<name>" as "<name>"; the
# prefix is removed as well when a client sends it unchanged.
PROVIDER_PREFIX = "openai/"
_STREAM_PIECE = re.compile(r"\S*\s*")


@dataclass(frozen=True)
class RecordedAnswer:
    """One model's recorded output for one prompt, with its token count."""

    output: str
    output_tokens: int


@dataclass(frozen=True)
class ReplayPrompt:
    """A recorded prompt: its text, gold answer and every model's answer."""

    id: str
    task: str
    text: str
    gold: str
    input_tokens: int
    answers: dict[str, RecordedAnswer]


@dataclass
class ReplayData:
    """The recorded prompts and the metadata of ``provenance.json``."""

    prompts: list[ReplayPrompt]
    provenance: dict[str, Any]
    by_text: dict[str, ReplayPrompt] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.by_text = {prompt.text: prompt for prompt in self.prompts}

    @property
    def models(self) -> list[str]:
        """Model ids in the order of ``provenance.json``."""
        return list(self.provenance["models"])

    def price(self, model: str) -> tuple[float, float]:
        """Return the (input, output) price of a model in USD per token."""
        entry = self.provenance["models"][model]["price"]
        return float(entry["input_cost_per_token"]), float(entry["output_cost_per_token"])


def load_replay_data(directory: str | Path = DEFAULT_DATA_DIR) -> ReplayData:
    """Read ``prompts.jsonl.gz`` and ``provenance.json`` from a replay data folder."""
    directory = Path(directory)
    prompts_path = directory / "prompts.jsonl.gz"
    provenance_path = directory / "provenance.json"
    for path in (prompts_path, provenance_path):
        if not path.is_file():
            raise FileNotFoundError(
                f"replay data file {path} not found; build it with "
                "python scripts/build_replay_slice.py --data-dir <data-dir>"
            )

    prompts = []
    with gzip.open(prompts_path, "rt", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            answers = {
                model: RecordedAnswer(entry["output"], int(entry["output_tokens"]))
                for model, entry in row["answers"].items()
            }
            prompts.append(
                ReplayPrompt(
                    row["id"], row["task"], row["text"], row["gold"],
                    int(row["input_tokens"]), answers,
                )
            )
    provenance = json.loads(provenance_path.read_text(encoding="utf-8"))
    return ReplayData(prompts, provenance)


@dataclass
class FailureRates:
    """Probabilities of the failures injected into each request, drawn independently.

    A timeout holds the answer back for ``timeout_delay`` seconds and then
    sends it, so a client with a shorter timeout gives up first.
    """

    server_error: float = 0.0  # HTTP 500
    rate_limit: float = 0.0  # HTTP 429 with Retry-After: retry_after seconds
    timeout: float = 0.0
    timeout_delay: float = 30.0
    retry_after: float = 1.0

    def __post_init__(self) -> None:
        for name in ("server_error", "rate_limit", "timeout"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} rate {value!r} is invalid; pass a value in [0, 1]")
        if self.server_error + self.rate_limit + self.timeout > 1.0:
            raise ValueError("the failure rates add up to more than 1; lower them")


class ReplayServer:
    """An OpenAI-compatible server that replays recorded answers; see the module docstring.

    Args:
        data: the recorded prompts, from :func:`load_replay_data`.
        host: address to bind. Only loopback addresses are accepted.
        port: TCP port; 0 picks a free one.
        latency: seconds added before every answer.
        latency_per_token: seconds added per recorded output token.
        failures: random failure rates; None injects none.
        seed: seed of the failure draws.
    """

    def __init__(
        self,
        data: ReplayData,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        latency_per_token: float = 0.0,
        failures: FailureRates | None = None,
        seed: int | None = 0,
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"host={host!r} is not a loopback address; use 127.0.0.1")
        if latency < 0 or latency_per_token < 0:
            raise ValueError("latency and latency_per_token must be >= 0 seconds")
        self.data = data
        self.latency = latency
        self.latency_per_token = latency_per_token
        self.failures = failures or FailureRates()
        self.counts: Counter[str] = Counter()
        self._random = random.Random(seed)
        self._queued: dict[str, deque[int | None]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), _make_handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL to pass to litellm as ``api_base``."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> ReplayServer:
        """Serve from a daemon thread and return self."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="replay-server", daemon=True
            )
            self._thread.start()
            logger.info("replay server started on %s with %d prompts", self.url,
                        len(self.data.prompts))
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
            logger.info("replay server on %s stopped; counts %s", self.url, dict(self.counts))
        self._server.server_close()

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def fail_next(self, model: str, status: int | None = 500, times: int = 1) -> None:
        """Fail the next ``times`` requests to ``model`` with ``status``; None times out."""
        with self._lock:
            self._queued.setdefault(model, deque()).extend([status] * times)

    def lookup(self, model: str, text: str) -> tuple[ReplayPrompt | None, RecordedAnswer | None]:
        """Return the recorded prompt and the model's answer to it, None where missing."""
        prompt = self.data.by_text.get(text.strip())
        if prompt is None:
            return None, None
        return prompt, prompt.answers.get(model)

    def _draw_failure(self, model: str) -> str | None:
        """Return "500", "429", "timeout" or None for the next request to ``model``."""
        with self._lock:
            queue = self._queued.get(model)
            if queue:
                status = queue.popleft()
                return "timeout" if status is None else str(status)
            draw = self._random.random()
        rates = self.failures
        if draw < rates.server_error:
            return "500"
        if draw < rates.server_error + rates.rate_limit:
            return "429"
        if draw < rates.server_error + rates.rate_limit + rates.timeout:
            return "timeout"
        return None

    def _count(self, key: str) -> None:
        with self._lock:
            self.counts[key] += 1


def _last_user_text(body: dict[str, Any]) -> str | None:
    for message in reversed(body.get("messages") or []):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            parts = [p.get("text", "") for p in content if isinstance(p, dict)]
            return "".join(str(p) for p in parts)
    return None


def _error_body(message: str, kind: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _make_handler(server: ReplayServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            logger.debug("%s " + format, self.address_string(), *args)

        def handle(self) -> None:
            try:
                super().handle()
            except (BrokenPipeError, ConnectionResetError):
                # The client timed out or stopped reading and closed the connection.
                server._count("client_disconnected")

        def do_GET(self) -> None:
            if self.path.rstrip("/") not in ("/v1/models", "/models"):
                self._send_json(404, _error_body(f"no route {self.path}", "invalid_request_error",
                                                 "not_found"))
                return
            models = [{"id": m, "object": "model", "owned_by": "replay"}
                      for m in server.data.models]
            self._send_json(200, {"object": "list", "data": models})

        def do_POST(self) -> None:
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                self._send_json(404, _error_body(f"no route {self.path}", "invalid_request_error",
                                                 "not_found"))
                return
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._send_json(400, _error_body("request body is not valid JSON",
                                                 "invalid_request_error", "invalid_json"))
                return

            model = str(body.get("model", "")).removeprefix(PROVIDER_PREFIX)
            text = _last_user_text(body)
            prompt, answer = server.lookup(model, text or "")
            if answer is None:
                self._send_missing(model, prompt is None, text)
                return

            failure = server._draw_failure(model)
            if failure in ("500", "429"):
                self._send_failure(int(failure), model)
                return
            delay = server.latency + server.latency_per_token * answer.output_tokens
            if failure == "timeout":
                server._count("injected_timeout")
                logger.debug("holding the answer of %s back for %.1f s", model,
                             server.failures.timeout_delay)
                delay += server.failures.timeout_delay
            if delay:
                time.sleep(delay)

            usage = {
                "prompt_tokens": prompt.input_tokens,
                "completion_tokens": answer.output_tokens,
                "total_tokens": prompt.input_tokens + answer.output_tokens,
            }
            server._count("served")
            if body.get("stream"):
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                self._send_stream(model, answer.output, usage if include_usage else None)
            else:
                self._send_json(200, completion_body(model, answer.output, usage))

        def _send_missing(self, model: str, no_prompt: bool, text: str | None) -> None:
            if no_prompt:
                server._count("prompt_not_found")
                preview = (text or "")[:60]
                message = (
                    f"no recorded answer: the prompt {preview!r} is not in the replay data; "
                    "send the text of a recorded prompt unchanged"
                )
                code = "prompt_not_found"
            else:
                server._count("model_not_found")
                message = (
                    f"no recorded answer of model {model!r} for this prompt; recorded models: "
                    f"{server.data.models}"
                )
                code = "model_not_found"
            logger.info("404 %s for model %s", code, model)
            self._send_json(404, _error_body(message, "invalid_request_error", code))

        def _send_failure(self, status: int, model: str) -> None:
            server._count(f"injected_{status}")
            logger.debug("injecting HTTP %d for model %s", status, model)
            if status == 429:
                retry_after = f"{server.failures.retry_after:g}"
                body = _error_body(f"injected rate limit for {model}; retry after "
                                   f"{retry_after} s", "rate_limit_error", "rate_limit_exceeded")
                self._send_json(429, body, {"Retry-After": retry_after})
            else:
                body = _error_body(f"injected server error {status} for {model}",
                                   "server_error", str(status))
                self._send_json(status, body)

        def _send_json(
            self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
        ) -> None:
            data = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _send_stream(self, model: str, text: str, usage: dict[str, int] | None) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True

            ident = f"chatcmpl-{uuid.uuid4().hex[:12]}"
            # Each piece is a word with its trailing whitespace, so the deltas
            # join back to the recorded text byte for byte.
            pieces = [p for p in _STREAM_PIECE.findall(text) if p]
            self._send_event(chunk_body(ident, model, {"role": "assistant", "content": ""}, None))
            for piece in pieces:
                self._send_event(chunk_body(ident, model, {"content": piece}, None))
            self._send_event(chunk_body(ident, model, {}, "stop"))
            if usage is not None:
                final = chunk_body(ident, model, {}, None)
                final["choices"] = []
                final["usage"] = usage
                self._send_event(final)
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

        def _send_event(self, payload: dict[str, Any]) -> None:
            self.wfile.write(b"data: " + json.dumps(payload).encode("utf-8") + b"\n\n")

    return Handler



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765, help="TCP port (default 8765)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR,
                        help="replay data folder (default examples/replay_data)")
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="milliseconds added before every answer (default 0)")
    parser.add_argument("--latency-per-token-ms", type=float, default=0.0,
                        help="milliseconds added per recorded output token (default 0)")
    parser.add_argument("--error-rate", type=float, default=0.0,
                        help="share of requests answered with HTTP 500 (default 0)")
    parser.add_argument("--rate-limit-rate", type=float, default=0.0,
                        help="share of requests answered with HTTP 429 (default 0)")
    parser.add_argument("--timeout-rate", type=float, default=0.0,
                        help="share of requests held back for --timeout-delay seconds")
    parser.add_argument("--timeout-delay", type=float, default=30.0,
                        help="seconds a timed-out request is held back (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the failure draws")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    failures = FailureRates(args.error_rate, args.rate_limit_rate, args.timeout_rate,
                            args.timeout_delay)
    replay = ReplayServer(
        load_replay_data(args.data), port=args.port, latency=args.latency_ms / 1000,
        latency_per_token=args.latency_per_token_ms / 1000, failures=failures, seed=args.seed,
    )
    with replay:
        print(f"serving {replay.url} for models {replay.data.models}; press Ctrl-C to stop",
              flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
