"""Streaming responses that write the log when the stream ends or is closed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ._types import RoutingDecision


@dataclass
class StreamResult:
    """Outcome of a finished stream, passed to the client for logging."""

    text: str
    usage: Any  # the provider's usage object, None when it sent none
    status: str  # ok, error or abandoned
    error: BaseException | None


def _chunk_text(chunk: Any) -> str:
    try:
        delta = chunk.choices[0].delta
    except (AttributeError, IndexError, TypeError):
        return ""
    content = getattr(delta, "content", None)
    return content or ""


class _StreamBase:
    """State shared by the sync and async streams."""

    def __init__(
        self,
        finish: Callable[[StreamResult], float],
        request_id: str,
        routing: RoutingDecision,
        model: str,
        fallback_chain: list[str],
    ) -> None:
        self.request_id = request_id
        self.routing = routing
        self.model = model  # the model that serves the stream
        self.fallback_chain = fallback_chain
        self.cost: float | None = None  # USD, set when the stream ends or closes
        self.status: str | None = None  # ok, error or abandoned once finished
        self._finish_callback = finish
        self._parts: list[str] = []
        self._usage: Any = None

    @property
    def text(self) -> str:
        """Text received so far; the whole answer once the stream is exhausted."""
        return "".join(self._parts)

    def _consume(self, chunk: Any) -> str:
        usage = getattr(chunk, "usage", None)
        if usage is not None and getattr(usage, "completion_tokens", None) is not None:
            self._usage = usage
        piece = _chunk_text(chunk)
        if piece:
            self._parts.append(piece)
        return piece

    def _finish(self, status: str, error: BaseException | None = None) -> None:
        if self.status is not None:
            return
        self.status = status
        self.cost = self._finish_callback(StreamResult(self.text, self._usage, status, error))


class StreamResponse(_StreamBase):
    """Text deltas of a streamed completion; iterate it once.

    The request is logged when the iteration ends, fails, or the stream is
    closed early (``close()``, leaving a ``with`` block, or the generator
    being garbage-collected), with status ok, error or abandoned.
    """

    def __init__(
        self,
        stream: Iterator[Any],
        first_chunks: list[Any],
        finish: Callable[[StreamResult], float],
        request_id: str,
        routing: RoutingDecision,
        model: str,
        fallback_chain: list[str],
    ) -> None:
        super().__init__(finish, request_id, routing, model, fallback_chain)
        self._stream = stream
        self._first = first_chunks
        self._generator: Iterator[str] | None = None

    def __iter__(self) -> Iterator[str]:
        if self._generator is None:
            self._generator = self._iterate()
        return self._generator

    def _iterate(self) -> Iterator[str]:
        status, error = "abandoned", None
        try:
            for chunk in self._first:
                piece = self._consume(chunk)
                if piece:
                    yield piece
            for chunk in self._stream:
                piece = self._consume(chunk)
                if piece:
                    yield piece
            status = "ok"
        except GeneratorExit:
            raise
        except Exception as exc:
            status, error = "error", exc
            raise
        finally:
            self._close_source()
            self._finish(status, error)

    def _close_source(self) -> None:
        close = getattr(self._stream, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # closing is best effort; the log write must happen
                pass

    def close(self) -> None:
        """Stop reading; the request is logged as abandoned unless it had ended."""
        if self._generator is not None:
            self._generator.close()  # runs the generator's finally block
        if self.status is None:
            self._close_source()
            self._finish("abandoned")

    def __enter__(self) -> StreamResponse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "status", "done") is None and self._generator is None:
            try:
                self._finish("abandoned")
            except Exception:  # interpreter shutdown may have torn down sqlite3
                pass


class AsyncStreamResponse(_StreamBase):
    """Async text deltas of a streamed completion; iterate it once with ``async for``.

    Logged like :class:`StreamResponse`; call ``await aclose()`` or use
    ``async with`` to log an early stop at once.
    """

    def __init__(
        self,
        stream: AsyncIterator[Any],
        first_chunks: list[Any],
        finish: Callable[[StreamResult], float],
        request_id: str,
        routing: RoutingDecision,
        model: str,
        fallback_chain: list[str],
    ) -> None:
        super().__init__(finish, request_id, routing, model, fallback_chain)
        self._stream = stream
        self._first = first_chunks
        self._generator: AsyncIterator[str] | None = None

    def __aiter__(self) -> AsyncIterator[str]:
        if self._generator is None:
            self._generator = self._iterate()
        return self._generator

    async def _iterate(self) -> AsyncIterator[str]:
        status, error = "abandoned", None
        try:
            for chunk in self._first:
                piece = self._consume(chunk)
                if piece:
                    yield piece
            async for chunk in self._stream:
                piece = self._consume(chunk)
                if piece:
                    yield piece
            status = "ok"
        except GeneratorExit:
            raise
        except Exception as exc:
            status, error = "error", exc
            raise
        finally:
            await self._close_source()
            self._finish(status, error)

    async def _close_source(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if callable(close):
            try:
                await close()
            except Exception:  # closing is best effort; the log write must happen
                pass

    async def aclose(self) -> None:
        """Stop reading; the request is logged as abandoned unless it had ended."""
        if self._generator is not None:
            await self._generator.aclose()  # type: ignore[attr-defined]
        if self.status is None:
            await self._close_source()
            self._finish("abandoned")

    async def __aenter__(self) -> AsyncStreamResponse:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
