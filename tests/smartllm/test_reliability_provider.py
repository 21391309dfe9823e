"""Provider trouble: every injected failure falls back or raises one typed error.

Each case makes the model the router prefers ("strong", at a high willingness
to pay and with exploration off) fail in one way on the local server. The
test then checks that another model serves the completion and that the
failure is retried only when the retry rules allow it. It also checks that
the request is logged exactly once, with the served model and the fallback
chain.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from smartllm import AllModelsFailedError

PROMPT = "List three prime numbers."
ORDERED = ["openai/strong", "openai/mid"]

# (failure options for server.fail, requests expected at "strong" with max_retries=1)
FAILURES = {
    "500": ({"status": 500}, 2),
    "503": ({"status": 503}, 2),
    "429 without Retry-After": ({"status": 429}, 2),
    "429 with Retry-After 0": ({"status": 429, "retry_after": "0"}, 2),
    "429 with long Retry-After": ({"status": 429, "retry_after": "3600"}, 1),
    "429 with HTTP-date Retry-After": (
        {"status": 429, "retry_after": "Wed, 21 Oct 2015 07:28:00 GMT"},
        2,
    ),
    "429 with garbage Retry-After": ({"status": 429, "retry_after": "soon"}, 2),
    "400 is not retried": ({"status": 400}, 1),
    "timeout": ({"status": None, "delay": 1.5}, 2),
    "malformed JSON": ({"mode": "malformed_json"}, 2),
    "empty choice list": ({"mode": "empty_choices"}, 2),
    "body cut mid-way": ({"mode": "cut_stream"}, 2),
    "connection dropped": ({"mode": "disconnect"}, 2),
}


@pytest.fixture
def client(make_client):
    return make_client(max_retries=1, timeout=0.5, exploration=0.0, min_explore=0.0)


@pytest.mark.filterwarnings("ignore:exploration=0")
@pytest.mark.parametrize("case", list(FAILURES))
def test_provider_failure_falls_back(case, client, server, log_rows):
    """A failing preferred model is retried as the rules allow, then replaced."""
    options, expected_attempts = FAILURES[case]
    server.fail("strong", times=None, **options)

    response = client.complete(PROMPT, models=ORDERED, willingness_to_pay=1000.0)

    assert response.routing.model == "openai/strong"
    assert response.model == "openai/mid"
    assert response.text == "mid answer"
    assert response.fallback_chain == ["openai/strong", "openai/mid"]
    assert server.count("strong") == expected_attempts
    rows = log_rows()
    assert len(rows) == 1
    assert rows[0]["id"] == response.request_id
    assert rows[0]["status"] == "ok"
    assert rows[0]["served_model"] == "openai/mid"
    assert json.loads(rows[0]["fallback_chain"]) == ["openai/strong", "openai/mid"]


@pytest.mark.filterwarnings("ignore:exploration=0")
def test_transient_failure_retried_same_model(client, server, log_rows):
    """One malformed response is retried on the same model, without a fallback."""
    server.fail("strong", mode="malformed_json", times=1)

    response = client.complete(PROMPT, models=ORDERED, willingness_to_pay=1000.0)

    assert response.model == "openai/strong"
    assert response.fallback_chain == ["openai/strong"]
    assert server.count("strong") == 2
    assert len(log_rows()) == 1


@pytest.mark.filterwarnings("ignore:exploration=0")
def test_empty_choices_everywhere_raises(client, server, log_rows):
    """When every model returns no choices, AllModelsFailedError names the cause."""
    server.fail("*", mode="empty_choices", times=None)

    with pytest.raises(AllModelsFailedError) as raised:
        client.complete(PROMPT, models=ORDERED, willingness_to_pay=1000.0)

    assert set(raised.value.causes) == set(ORDERED)
    assert "no choices" in str(raised.value)
    rows = log_rows()
    assert len(rows) == 1
    assert rows[0]["status"] == "error"
    assert rows[0]["served_model"] is None


@pytest.mark.filterwarnings("ignore:exploration=0")
def test_every_failure_mode_at_once_raises_once(client, server, log_rows):
    """With all models failing differently, one error is raised and one row logged."""
    server.fail("strong", status=500, times=None)
    server.fail("mid", mode="malformed_json", times=None)
    server.fail("cheap", mode="disconnect", times=None)

    with pytest.raises(AllModelsFailedError) as raised:
        client.complete(PROMPT, willingness_to_pay=1000.0)

    assert set(raised.value.causes) == {"openai/strong", "openai/mid", "openai/cheap"}
    rows = log_rows()
    assert len(rows) == 1
    assert rows[0]["status"] == "error"
    assert set(json.loads(rows[0]["fallback_chain"])) == set(raised.value.causes)


@pytest.mark.filterwarnings("ignore:exploration=0")
def test_stream_cut_midway_logged_as_error(client, server, log_rows):
    """A stream cut after its first text raises to the reader and is logged as error."""
    server.fail("strong", mode="cut_stream", times=None)
    stream = client.complete(PROMPT, models=ORDERED, willingness_to_pay=1000.0, stream=True)

    pieces = []
    with pytest.raises(Exception) as raised:
        for piece in stream:
            pieces.append(piece)

    assert not isinstance(raised.value, AssertionError)
    assert pieces == ["strong"]
    assert stream.status == "error"
    assert stream.model == "openai/strong"
    rows = log_rows()
    assert len(rows) == 1
    assert rows[0]["status"] == "error"
    assert rows[0]["error"]
    assert rows[0]["stream"] == 1


@pytest.mark.filterwarnings("ignore:exploration=0")
def test_stream_failing_before_text_falls_back(client, server, log_rows):
    """A stream that fails before its first chunk falls back like a plain call."""
    server.fail("strong", mode="disconnect", times=None)
    stream = client.complete(PROMPT, models=ORDERED, willingness_to_pay=1000.0, stream=True)

    text = "".join(stream)

    assert text == "mid answer"
    assert stream.model == "openai/mid"
    rows = log_rows()
    assert len(rows) == 1
    assert rows[0]["status"] == "ok"


@pytest.mark.filterwarnings("ignore:exploration=0")
@pytest.mark.parametrize("mode", ["malformed_json", "empty_choices", "disconnect"])
def test_async_provider_failure_falls_back(mode, client, server, log_rows):
    """acomplete falls back from the same broken responses as complete."""
    server.fail("strong", mode=mode, times=None)

    response = asyncio.run(
        client.acomplete(PROMPT, models=ORDERED, willingness_to_pay=1000.0)
    )

    assert response.model == "openai/mid"
    assert len(log_rows()) == 1
