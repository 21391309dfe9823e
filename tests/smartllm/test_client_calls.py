"""Retries, fallbacks, timeouts and streaming against the local server via litellm."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from smartllm import AllModelsFailedError, AsyncStreamResponse, StreamResponse

PROMPT = "Summarise the causes of the French revolution."
ORDERED = ["openai/strong", "openai/mid", "openai/cheap"]


def test_fallback_on_500(make_client, server, log_rows):
    """A model that keeps answering 500 is replaced by the next-ranked model."""
    client = make_client(max_retries=1)
    server.fail("strong", 500, times=None)
    response = client.complete(PROMPT, models=ORDERED, willingness_to_pay=100.0)
    assert response.routing.model == "openai/strong"
    assert response.model != "openai/strong"
    assert response.fallback_chain[0] == "openai/strong"
    assert response.fallback_chain[-1] == response.model
    assert server.count("strong") == 2
    row = log_rows()[-1]
    assert row["chosen_model"] == "openai/strong"
    assert row["served_model"] == response.model
    assert json.loads(row["fallback_chain"]) == response.fallback_chain
    assert row["propensity"] == pytest.approx(response.routing.propensity)


def test_retry_same_model_after_500(make_client, server):
    """One transient 500 is retried on the same model, without fallback."""
    client = make_client(max_retries=2)
    server.fail("strong", 500, times=1)
    response = client.complete(PROMPT, models=["openai/strong"])
    assert response.model == "openai/strong"
    assert response.fallback_chain == ["openai/strong"]


def test_retry_after_header_honoured(make_client, server):
    """A 429 with Retry-After: 0.3 is retried on the same model after 0.3 s."""
    client = make_client(max_retries=1, retry_base_delay=0.001)
    server.fail("mid", 429, times=1, retry_after="0.3")
    start = time.perf_counter()
    response = client.complete(PROMPT, models=["openai/mid"])
    elapsed = time.perf_counter() - start
    assert response.model == "openai/mid"
    assert elapsed >= 0.3


def test_retry_after_ms_header_honoured(make_client, server):
    """A 429 with retry-after-ms: 200 waits 0.2 s before the retry."""
    client = make_client(max_retries=1, retry_base_delay=0.001)
    server.fail("mid", 429, times=1, retry_after_ms="200")
    start = time.perf_counter()
    client.complete(PROMPT, models=["openai/mid"])
    assert time.perf_counter() - start >= 0.2


def test_long_retry_after_falls_back_at_once(make_client, server):
    """A Retry-After above max_retry_delay makes the client fall back without waiting."""
    client = make_client(max_retries=3, max_retry_delay=0.5)
    server.fail("strong", 429, times=None, retry_after="120")
    start = time.perf_counter()
    response = client.complete(PROMPT, models=ORDERED, willingness_to_pay=100.0)
    assert time.perf_counter() - start < 5
    assert response.model != "openai/strong"
    assert server.count("strong") == 1


def test_429_without_retry_after_backs_off(make_client, server):
    """A 429 without Retry-After is retried with exponential backoff."""
    client = make_client(max_retries=2)
    server.fail("mid", 429, times=2)
    response = client.complete(PROMPT, models=["openai/mid"])
    assert response.model == "openai/mid"
    assert server.count("mid") >= 3


def test_timeout_falls_back(make_client, server):
    """A model slower than the timeout is abandoned for the next model."""
    client = make_client(timeout=0.3, max_retries=0)
    server.fail("strong", None, times=1, delay=1.5)
    start = time.perf_counter()
    response = client.complete(PROMPT, models=ORDERED, willingness_to_pay=100.0)
    elapsed = time.perf_counter() - start
    assert response.routing.model == "openai/strong"
    assert response.fallback_chain[0] == "openai/strong"
    assert response.model != "openai/strong"
    assert elapsed >= 0.3
    assert elapsed < 1.5


def test_client_error_falls_back_without_retry(make_client, server):
    """A 400 is not retried on the same model but falls back at once."""
    client = make_client(max_retries=3)
    server.fail("strong", 400, times=None)
    response = client.complete(PROMPT, models=ORDERED, willingness_to_pay=100.0)
    assert response.model != "openai/strong"
    assert server.count("strong") == 1


def test_all_models_failed(make_client, server, log_rows):
    """When every allowed model fails, AllModelsFailedError carries each cause."""
    client = make_client(max_retries=0)
    server.fail("*", 500, times=None)
    with pytest.raises(AllModelsFailedError) as caught:
        client.complete(PROMPT, models=["openai/mid", "openai/cheap"])
    causes = caught.value.causes
    assert set(causes) == {"openai/mid", "openai/cheap"}
    assert all(getattr(exc, "status_code", None) == 500 for exc in causes.values())
    row = log_rows()[-1]
    assert row["status"] == "error"
    assert row["served_model"] is None
    assert "500" in row["error"]


def test_fallback_respects_budget(make_client, server):
    """Fallbacks never move to a model above the budget."""
    client = make_client(max_retries=0)
    server.fail("cheap", 500, times=None)
    with pytest.raises(AllModelsFailedError) as caught:
        client.complete(PROMPT, budget=0.0005)
    assert set(caught.value.causes) == {"openai/cheap"}


def test_sync_stream_logs_usage(make_client, server, log_rows):
    """A sync stream yields the answer and logs tokens and cost when it ends."""
    client = make_client()
    stream = client.complete(PROMPT, models=["openai/mid"], stream=True)
    assert isinstance(stream, StreamResponse)
    pieces = list(stream)
    assert "".join(pieces) == server.answer_for("mid")
    assert stream.status == "ok"
    assert stream.cost > 0
    row = log_rows()[-1]
    assert row["id"] == stream.request_id
    assert row["stream"] == 1
    assert row["status"] == "ok"
    assert row["output_tokens"] == 2
    assert row["tokens_estimated"] == 0
    assert row["cost"] == pytest.approx(stream.cost)
    assert row["latency_ms"] > 0


def test_sync_stream_abandoned_is_logged(make_client, server, log_rows):
    """Closing a stream after one chunk logs it as abandoned with estimated tokens."""
    client = make_client()
    server.answers["strong"] = "one two three four five six"
    try:
        stream = client.complete(PROMPT, models=["openai/strong"], stream=True)
        iterator = iter(stream)
        next(iterator)
        stream.close()
    finally:
        server.answers["strong"] = "strong answer"
    row = log_rows()[-1]
    assert row["status"] == "abandoned"
    assert row["tokens_estimated"] == 1
    assert row["output_tokens"] >= 1


def test_sync_stream_never_iterated_is_logged(make_client, log_rows):
    """A stream closed before iteration is still logged."""
    client = make_client()
    with client.complete(PROMPT, stream=True) as stream:
        request_id = stream.request_id
    rows = log_rows()
    assert rows[-1]["id"] == request_id
    assert rows[-1]["status"] == "abandoned"


def test_stream_falls_back_before_first_chunk(make_client, server):
    """A stream whose first model fails before any chunk falls back."""
    client = make_client(max_retries=0)
    server.fail("strong", 500, times=1)
    stream = client.complete(PROMPT, models=ORDERED, willingness_to_pay=100.0, stream=True)
    text = "".join(stream)
    assert stream.model != "openai/strong"
    assert text == server.answer_for(stream.model.split("/")[1])


def test_async_complete(make_client, server):
    """acomplete() returns the served answer."""
    client = make_client()
    response = asyncio.run(client.acomplete(PROMPT, models=["openai/cheap"]))
    assert response.text == server.answer_for("cheap")
    assert response.model == "openai/cheap"


def test_async_fallback(make_client, server):
    """acomplete() falls back on a 500 like complete()."""
    client = make_client(max_retries=0)
    server.fail("strong", 500, times=None)
    response = asyncio.run(
        client.acomplete(PROMPT, models=ORDERED, willingness_to_pay=100.0)
    )
    assert response.model != "openai/strong"
    assert response.fallback_chain[0] == "openai/strong"


def test_async_stream_logs_usage(make_client, server, log_rows):
    """An async stream yields the answer and logs usage at the end."""
    client = make_client()

    async def run() -> tuple[AsyncStreamResponse, str]:
        stream = await client.acomplete(PROMPT, models=["openai/cheap"], stream=True)
        pieces = [piece async for piece in stream]
        return stream, "".join(pieces)

    stream, text = asyncio.run(run())
    assert text == server.answer_for("cheap")
    assert stream.status == "ok"
    row = log_rows()[-1]
    assert row["id"] == stream.request_id
    assert row["status"] == "ok"
    assert row["output_tokens"] == 2


def test_async_stream_abandoned_is_logged(make_client, server, log_rows):
    """Leaving an async stream early logs it as abandoned."""
    client = make_client()

    async def run() -> str:
        async with await client.acomplete(
            PROMPT, models=["openai/strong"], stream=True
        ) as stream:
            async for _ in stream:
                break
        return stream.request_id

    request_id = asyncio.run(run())
    row = log_rows()[-1]
    assert row["id"] == request_id
    assert row["status"] == "abandoned"
