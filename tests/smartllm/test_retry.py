"""Tables of retry decisions and Retry-After headers."""

from __future__ import annotations

import email.utils
import random

import pytest

from smartllm._retry import parse_retry_after, retry_delay, should_retry

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, True),
        (408, True),
        (409, True),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (529, True),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (422, False),
    ],
)
def test_should_retry_table(status, expected):
    """Timeouts, 408, 409, 429 and 5xx are retried; other 4xx are not."""
    assert should_retry(status) is expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "2"}, 2.0),
        ({"retry-after": "2.5"}, 2.5),
        ({"RETRY-AFTER": " 3 "}, 3.0),
        ({"Retry-After": "0"}, 0.0),
        ({"Retry-After": "-1"}, None),
        ({"Retry-After": "abc"}, None),
        ({"Retry-After": ""}, None),
        ({"Retry-After": "nan"}, None),
        ({"Retry-After": "inf"}, None),
        ({"retry-after-ms": "150"}, 0.15),
        ({"retry-after-ms": "150", "Retry-After": "9"}, 0.15),
        ({"retry-after-ms": "junk", "Retry-After": "9"}, 9.0),
        ({"Retry-After": email.utils.formatdate(NOW + 30, usegmt=True)}, 30.0),
        ({"Retry-After": email.utils.formatdate(NOW - 30, usegmt=True)}, 0.0),
        ({"Retry-After": "Wed, 99 Foo 2024 00:00:00 GMT"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_parse_retry_after_table(headers, expected):
    """Retry-After as seconds, milliseconds or HTTP date; junk is ignored."""
    result = parse_retry_after(headers, now=NOW)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected, abs=1.0 if "GMT" in str(headers) else 1e-9)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "1"}, 1.0),
        ({"Retry-After": "8"}, 8.0),
        ({"Retry-After": "8.01"}, None),
        ({"Retry-After": "3600"}, None),
        ({"retry-after-ms": "500"}, 0.5),
    ],
)
def test_retry_delay_honours_header_up_to_cap(headers, expected):
    """A header delay is used as sent, and above the cap means fall back."""
    assert retry_delay(0, headers, base=0.5, cap=8.0, now=NOW) == expected


@pytest.mark.parametrize(("attempt", "upper"), [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (10, 8.0)])
def test_retry_delay_exponential_with_jitter(attempt, upper):
    """Without a header the delay is base * 2**attempt minus up to 25 %, capped."""
    rng = random.Random(1)
    for _ in range(50):
        delay = retry_delay(attempt, {"Retry-After": "garbage"}, base=0.5, cap=8.0, rng=rng)
        assert delay <= upper
        assert delay >= 0.75 * upper


def test_retry_delay_huge_attempt_capped():
    """A very large attempt number still returns the cap, not an overflow."""
    assert retry_delay(10_000, None, base=0.5, cap=8.0) <= 8.0


def test_retry_delay_negative_attempt_raises():
    """A negative attempt number raises ValueError."""
    with pytest.raises(ValueError, match="attempt"):
        retry_delay(-1)
