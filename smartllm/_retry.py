"""Retry decisions for provider calls, as small pure functions.

The client calls litellm with its own retries disabled and asks these functions
whether to retry a failed attempt on the same model, and how long to wait.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Mapping

# 408 request timeout, 409 conflict (lock contention), 429 rate limit and the
# transient server errors. Other 4xx errors repeat on a retry.
RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


def should_retry(status: int | None) -> bool:
    """Return whether an attempt that failed with this HTTP status may be retried.

    ``None`` stands for a failure without a response (timeout, refused or reset
    connection), which is retried. Any other 5xx status is retried too.
    """
    if status is None:
        return True
    return status in RETRYABLE_STATUS or status >= 500


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Return the wait in seconds that response headers ask for, or None.

    Reads ``retry-after-ms`` (milliseconds), then ``Retry-After`` as seconds or
    as an HTTP date. Header names are matched case-insensitively. Values that
    are negative, not finite or unparseable are ignored, and a date in the past
    gives 0.
    """
    if not headers:
        return None
    lowered = {str(key).lower(): str(value).strip() for key, value in headers.items()}

    milliseconds = _parse_seconds(lowered.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000.0

    raw = lowered.get("retry-after")
    if raw is None:
        return None
    seconds = _parse_seconds(raw)
    if seconds is not None:
        return seconds

    try:
        moment = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if moment is None or moment.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, moment.timestamp() - current)


def _parse_seconds(raw: str | None) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return value


def retry_delay(
    attempt: int,
    headers: Mapping[str, str] | None = None,
    *,
    base: float = 0.5,
    cap: float = 8.0,
    rng: random.Random | None = None,
    now: float | None = None,
) -> float | None:
    """Return the seconds to wait before retry number ``attempt`` (0-based).

    A ``Retry-After`` or ``retry-after-ms`` header is honoured as sent. When it
    asks for more than ``cap`` seconds the function returns None, meaning "do not
    wait for this model": the client falls back to the next model instead.
    Without a usable header the delay is ``base * 2**attempt`` with up to 25 %
    random reduction (jitter), capped at ``cap``.
    """
    if attempt < 0:
        raise ValueError(f"attempt={attempt!r} is negative; attempts count from 0")

    requested = parse_retry_after(headers, now=now)
    if requested is not None:
        return requested if requested <= cap else None

    exponential = min(cap, base * (2.0 ** min(attempt, 32)))
    jitter = (rng or random).uniform(0.75, 1.0)
    return exponential * jitter
