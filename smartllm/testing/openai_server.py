"""An OpenAI-compatible chat completions server on 127.0.0.1 for tests and examples.

It serves ``POST /v1/chat/completions`` (plain JSON and SSE streaming with a
final usage chunk) from a thread, answers each model with a configured text
and can inject failures: an HTTP status with or without ``Retry-After``, a
delay that makes the client time out, or a broken response (see
:data:`FAILURE_MODES`).

Usage::

    with OpenAIServer(answers={"cheap": "4"}) as server:
        server.fail("cheap", status=429, retry_after="1", times=1)
        client = Client(models={"openai/cheap": {"api_base": server.url, "api_key": "x"}})

litellm sends ``openai/cheap`` as model ``cheap``, so answers and failures
are keyed by the name after the provider prefix. The key ``"*"`` matches every
model.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_ANSWER = "This is a test answer."

# Kinds of injected failure, besides an HTTP error status:
#   status          the HTTP status with an OpenAI-style error body
#   malformed_json  status 200 with a body that is not valid JSON
#   empty_choices   status 200 with a valid completion whose choices list is empty
#   cut_stream      a chunked response that stops after the first chunks of the
#                   answer and closes the connection without the final chunk
#   disconnect      closes the connection without sending a response
FAILURE_MODES = frozenset({"status", "malformed_json", "empty_choices", "cut_stream", "disconnect"})


@dataclass
class FailureSpec:
    """One injected failure: wait ``delay`` seconds, then respond as ``mode`` sets.

    In mode ``status``, ``status`` None answers normally after the delay,
    which makes a client with a shorter timeout give up.
    """

    status: int | None = 500
    retry_after: str | None = None  # value of the Retry-After header
    retry_after_ms: str | None = None  # value of the retry-after-ms header
    delay: float = 0.0
    remaining: int | None = 1  # failures left; None never runs out
    mode: str = "status"  # one of FAILURE_MODES
    message: str | None = None  # error message in the body, for mode status


@dataclass
class RecordedRequest:
    """A request the server received, without its headers."""

    model: str
    stream: bool
    body: dict[str, Any] = field(repr=False)
    status: int
    time: float


class OpenAIServer:
    """A local OpenAI-compatible server; see the module docstring."""

    def __init__(
        self,
        answers: dict[str, str] | None = None,
        default_answer: str = DEFAULT_ANSWER,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.answers = dict(answers or {})
        self.default_answer = default_answer
        self.requests: list[RecordedRequest] = []
        self._failures: dict[str, deque[FailureSpec]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), _make_handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL to pass to litellm as ``api_base``."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> OpenAIServer:
        """Serve in a daemon thread; return self."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="openai-test-server", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def fail(
        self,
        model: str,
        status: int | None = 500,
        *,
        times: int | None = 1,
        retry_after: str | None = None,
        retry_after_ms: str | None = None,
        delay: float = 0.0,
        mode: str = "status",
        message: str | None = None,
    ) -> None:
        """Queue a failure for the next ``times`` requests to ``model`` (None: all).

        ``mode`` picks the kind of failure from :data:`FAILURE_MODES`, and
        ``message`` replaces the error message of a ``status`` failure.
        """
        if mode not in FAILURE_MODES:
            raise ValueError(f"mode={mode!r} is unknown; use one of {sorted(FAILURE_MODES)}")
        spec = FailureSpec(status, retry_after, retry_after_ms, delay, times, mode, message)
        with self._lock:
            self._failures.setdefault(model, deque()).append(spec)

    def clear_failures(self) -> None:
        """Drop every queued failure."""
        with self._lock:
            self._failures.clear()

    def reset(self) -> None:
        """Drop queued failures and recorded requests."""
        with self._lock:
            self._failures.clear()
            self.requests.clear()

    def count(self, model: str | None = None) -> int:
        """Return how many requests arrived, for one model or in total."""
        with self._lock:
            return sum(1 for r in self.requests if model is None or r.model == model)

    def answer_for(self, model: str) -> str:
        """Return the configured answer text of a model."""
        return self.answers.get(model, self.answers.get("*", self.default_answer))

    def _take_failure(self, model: str) -> FailureSpec | None:
        with self._lock:
            for key in (model, "*"):
                queue = self._failures.get(key)
                if not queue:
                    continue
                spec = queue[0]
                if spec.remaining is not None:
                    spec.remaining -= 1
                    if spec.remaining <= 0:
                        queue.popleft()
                return spec
        return None

    def _record(self, model: str, stream: bool, body: dict[str, Any], status: int) -> None:
        with self._lock:
            self.requests.append(RecordedRequest(model, stream, body, status, time.time()))


def _count_words(body: dict[str, Any]) -> int:
    total = 0
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            total += len(content.split())
    return max(total, 1)


def _make_handler(server: OpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Keep test output quiet."""

        def handle(self) -> None:
            try:
                super().handle()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out or stopped reading and closed the connection

        def do_POST(self) -> None:
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                self._send_json(404, {"error": {"message": f"no route {self.path}"}})
                return
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._send_json(400, {"error": {"message": "body is not JSON"}})
                return

            model = str(body.get("model", ""))
            stream = bool(body.get("stream"))
            failure = server._take_failure(model)
            # Record on arrival, so the attempt of a client that timed out is counted too.
            failing_status = failure.status if failure and failure.mode == "status" else None
            server._record(model, stream, body, failing_status or 200)
            if failure is not None and failure.delay:
                time.sleep(failure.delay)
            if failure is not None and failure.mode != "status":
                self._send_broken(failure.mode, model, stream, server.answer_for(model))
                return
            if failure is not None and failure.status is not None:
                self._send_error(failure)
                return

            answer = server.answer_for(model)
            usage = {
                "prompt_tokens": _count_words(body),
                "completion_tokens": len(answer.split()),
            }
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            if stream:
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                self._send_stream(model, answer, usage if include_usage else None)
            else:
                self._send_json(200, completion_body(model, answer, usage))

        def _send_error(self, failure: FailureSpec) -> None:
            headers = {}
            if failure.retry_after is not None:
                headers["Retry-After"] = failure.retry_after
            if failure.retry_after_ms is not None:
                headers["retry-after-ms"] = failure.retry_after_ms
            kind = "rate_limit_error" if failure.status == 429 else "server_error"
            payload = {
                "error": {
                    "message": failure.message or f"injected failure {failure.status}",
                    "type": kind,
                    "code": str(failure.status),
                }
            }
            self._send_json(int(failure.status or 500), payload, headers)

        def _send_broken(self, mode: str, model: str, stream: bool, answer: str) -> None:
            self.close_connection = True
            if mode == "disconnect":
                return
            if mode == "malformed_json":
                data = b'{"id": "chatcmpl-broken", "choices": [{"message": {"content'
                self._send_raw(200, "application/json", data)
            elif mode == "empty_choices":
                payload = completion_body(model, answer, {"prompt_tokens": 1, "completion_tokens": 0})
                payload["choices"] = []
                self._send_json(200, payload)
            elif mode == "cut_stream":
                self._send_cut_stream(model, answer, stream)

        def _send_raw(self, status: int, content_type: str, data: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _send_cut_stream(self, model: str, answer: str, stream: bool) -> None:
            # Chunked encoding lets the client tell a cut from a normal end: the
            # connection closes before the zero-length final chunk.
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream" if stream else "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            ident = f"chatcmpl-{uuid.uuid4().hex[:12]}"
            if stream:
                first_word = answer.split(" ")[0]
                events = [
                    chunk_body(ident, model, {"role": "assistant", "content": ""}, None),
                    chunk_body(ident, model, {"content": first_word}, None),
                ]
                parts = [b"data: " + json.dumps(e).encode("utf-8") + b"\n\n" for e in events]
            else:
                parts = [json.dumps(completion_body(model, answer, {}))[:40].encode("utf-8")]
            try:
                for part in parts:
                    self.wfile.write(f"{len(part):x}\r\n".encode("ascii") + part + b"\r\n")
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass

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

        def _send_stream(self, model: str, answer: str, usage: dict[str, int] | None) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True

            ident = f"chatcmpl-{uuid.uuid4().hex[:12]}"
            words = answer.split(" ")
            deltas = [{"role": "assistant", "content": ""}]
            deltas += [{"content": w if i == 0 else " " + w} for i, w in enumerate(words)]
            try:
                for delta in deltas:
                    self._send_event(chunk_body(ident, model, delta, None))
                self._send_event(chunk_body(ident, model, {}, "stop"))
                if usage is not None:
                    final = chunk_body(ident, model, {}, None)
                    final["choices"] = []
                    final["usage"] = usage
                    self._send_event(final)
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stopped reading

        def _send_event(self, payload: dict[str, Any]) -> None:
            self.wfile.write(b"data: " + json.dumps(payload).encode("utf-8") + b"\n\n")
            self.wfile.flush()

    return Handler


def completion_body(model: str, answer: str, usage: dict[str, int]) -> dict[str, Any]:
    """Return an OpenAI chat.completion response body with one choice."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer},
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
    }


def chunk_body(ident: str, model: str, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    """Return one OpenAI chat.completion.chunk body for a streamed response."""
    return {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Serve canned chat completions on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8765, help="TCP port (default 8765)")
    arguments = parser.parse_args()
    with OpenAIServer(port=arguments.port) as running:
        print(f"serving {running.url}; press Ctrl-C to stop", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
