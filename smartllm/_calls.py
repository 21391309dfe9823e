"""Provider calls with retries on the same model, then fallback to the next model.

litellm is called with its own retries disabled; :mod:`smartllm._retry`
decides whether and how long to wait. Every model in the order gets
``1 + max_retries`` attempts at most before the next one is tried.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._errors import AllModelsFailedError
from ._pool import PoolModel
from ._retry import retry_delay, should_retry

logger = logging.getLogger(__name__)

REDACTED = "[REDACTED]"
# Credentials a provider may echo in an error message even when the client
# does not know them: bearer tokens and OpenAI-style "sk-..." keys.
_SECRET_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[^\s,;'\"]+"),
    re.compile(r"\b(sk-)[A-Za-z0-9_\-]{6,}"),
)
_SECRET_NAME = re.compile(r"(?i)(key|token|secret|password|authorization)")
# Shorter values are too likely to occur in ordinary text to be replaced.
MIN_SECRET_LENGTH = 8


class EmptyCompletionError(RuntimeError):
    """A provider returned a completion without choices. It is retried like a timeout."""


def check_choices(result: Any) -> Any:
    """Return a non-streamed completion, or raise EmptyCompletionError if it has no choices."""
    if not getattr(result, "choices", None):
        raise EmptyCompletionError("the provider returned a completion with no choices")
    return result


@dataclass
class RetrySettings:
    """How often and how long to retry one model."""

    max_retries: int = 2
    base_delay: float = 0.5  # seconds before the first retry, doubled per retry
    max_delay: float = 8.0  # seconds; a longer Retry-After triggers a fallback
    rng: random.Random = field(default_factory=random.Random)


@dataclass
class CallOutcome:
    """The result of the model that served, and what happened before it."""

    result: Any
    served: PoolModel
    chain: list[str]  # models tried, in order, ending with ``served``
    causes: dict[str, BaseException]  # error of each model that failed


def error_status(exc: BaseException) -> int | None:
    """Return the HTTP status of a litellm error, or None when there was no response."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status
    return None


def error_headers(exc: BaseException) -> Mapping[str, str]:
    """Return the response headers attached to a litellm error, or an empty dict."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is not None:
        try:
            return dict(headers)
        except (TypeError, ValueError):
            pass
    headers = getattr(exc, "litellm_response_headers", None)
    if headers is not None:
        try:
            return dict(headers)
        except (TypeError, ValueError):
            pass
    return {}


def secret_values(models: Iterable[PoolModel]) -> list[str]:
    """Return the credentials an error message must not repeat.

    These are the pool entries' parameters and headers whose name contains
    key, token, secret, password or authorization, and the values of
    environment variables with such names (``OPENAI_API_KEY`` and the like,
    which litellm reads).
    """
    found = [
        value for name, value in os.environ.items() if _SECRET_NAME.search(name)
    ]
    for model in models:
        for name, value in model.params.items():
            if isinstance(value, Mapping):  # extra_headers, headers
                found += [v for k, v in value.items() if _SECRET_NAME.search(str(k))]
            elif _SECRET_NAME.search(name):
                found.append(value)
    unique = {v for v in found if isinstance(v, str) and len(v) >= MIN_SECRET_LENGTH}
    return sorted(unique, key=len, reverse=True)


def redact_secrets(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace known credentials, bearer tokens and sk- keys in ``text`` with [REDACTED]."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda match: match.group(1) + REDACTED, text)
    return text


def describe_error(exc: BaseException, secrets: Iterable[str] = ()) -> str:
    """Return a one-line description of an error: type, HTTP status and message.

    Credentials in the message are redacted (see :func:`redact_secrets`),
    because the description goes to the log file and to logging.
    """
    status = error_status(exc)
    text = str(exc).splitlines()[0] if str(exc) else ""
    text = redact_secrets(text, secrets)[:300]
    prefix = type(exc).__name__ if status is None else f"{type(exc).__name__} ({status})"
    return f"{prefix}: {text}" if text else prefix


def _next_delay(
    exc: BaseException, attempt: int, settings: RetrySettings, model: str, request_id: str
) -> float | None:
    status = error_status(exc)
    if attempt >= settings.max_retries:
        logger.debug("request %s: %s failed, no retries left", request_id, model)
        return None
    if not should_retry(status):
        logger.debug("request %s: %s failed with status %s, not retryable", request_id, model, status)
        return None
    delay = retry_delay(
        attempt,
        error_headers(exc),
        base=settings.base_delay,
        cap=settings.max_delay,
        rng=settings.rng,
    )
    if delay is None:
        logger.debug(
            "request %s: %s asked to wait more than %.1f s, falling back",
            request_id,
            model,
            settings.max_delay,
        )
        return None
    logger.debug(
        "request %s: retry %d of %s after %.3f s (status %s)",
        request_id,
        attempt + 1,
        model,
        delay,
        status,
    )
    return delay


def _record_failure(
    exc: BaseException, model: PoolModel, order: Sequence[PoolModel], request_id: str
) -> None:
    following = order[order.index(model) + 1 :] if model in order else []
    logger.warning(
        "request %s: model %s failed: %s; %s",
        request_id,
        model.name,
        describe_error(exc, secret_values(order)),
        f"falling back to {following[0].name}" if following else "no model left",
    )


def _all_failed(
    request_id: str, causes: dict[str, BaseException], order: Sequence[PoolModel]
) -> AllModelsFailedError:
    secrets = secret_values(order)
    details = "; ".join(
        f"{name}: {describe_error(exc, secrets)}" for name, exc in causes.items()
    )
    return AllModelsFailedError(
        f"request {request_id}: all {len(causes)} models failed ({details})", causes
    )


def call_with_fallbacks(
    order: Sequence[PoolModel],
    invoke: Callable[[PoolModel], Any],
    settings: RetrySettings,
    request_id: str,
) -> CallOutcome:
    """Call ``invoke`` on each model in order until one succeeds."""
    causes: dict[str, BaseException] = {}
    chain: list[str] = []
    for model in order:
        chain.append(model.name)
        attempt = 0
        while True:
            try:
                result = invoke(model)
            # litellm raises its own, openai's and httpx's exception types.
            except Exception as exc:
                delay = _next_delay(exc, attempt, settings, model.name, request_id)
                if delay is None:
                    causes[model.name] = exc
                    _record_failure(exc, model, order, request_id)
                    break
                time.sleep(delay)
                attempt += 1
                continue
            return CallOutcome(result, model, chain, causes)
    raise _all_failed(request_id, causes, order)


async def acall_with_fallbacks(
    order: Sequence[PoolModel],
    invoke: Callable[[PoolModel], Awaitable[Any]],
    settings: RetrySettings,
    request_id: str,
) -> CallOutcome:
    """Await ``invoke`` on each model in order until one succeeds."""
    causes: dict[str, BaseException] = {}
    chain: list[str] = []
    for model in order:
        chain.append(model.name)
        attempt = 0
        while True:
            try:
                result = await invoke(model)
            # litellm raises its own, openai's and httpx's exception types.
            except Exception as exc:
                delay = _next_delay(exc, attempt, settings, model.name, request_id)
                if delay is None:
                    causes[model.name] = exc
                    _record_failure(exc, model, order, request_id)
                    break
                await asyncio.sleep(delay)
                attempt += 1
                continue
            return CallOutcome(result, model, chain, causes)
    raise _all_failed(request_id, causes, order)
