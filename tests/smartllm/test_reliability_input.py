"""Bad input: each invalid argument raises a typed error that names the value and the fix.

Odd but valid input (control characters, bidirectional marks, astral
characters, a 1 MB prompt) completes and is logged. The property-based tests
drive ``Client.route`` with arbitrary budgets, allow lists and prompts.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smartllm import (
    BudgetExceededError,
    Client,
    ConfigurationError,
    FeedbackError,
    RoutingDecision,
    UnknownModelError,
)

from shared import POOL, pool_entries

PROMPT = "What is the boiling point of water at sea level?"

ODD_PROMPTS = {
    "NUL and control characters": "a\x00b\x07c\x1bd",
    "bidirectional override": "\u202eevil\u202c text",
    "zero-width and BOM": "\ufeff\u200bzero\u200dwidth\u2060",
    "combining marks": "Z\u0351\u0362a\u0324\u0334l\u0332go",
    "astral and emoji sequence": "\U0001d518\U0001f468\u200d\U0001f469\u200d\U0001f467",
    "noncharacters and private use": "\uffff\ufffe\ue000\U0010ffff",
    "right-to-left script": "\u0645\u0631\u062d\u0628\u0627 \u05e9\u05dc\u05d5\u05dd",
    "line and paragraph separators": "one\u2028two\u2029three\r\n",
}


def test_empty_prompt_rejected(make_client):
    """An empty prompt raises ConfigurationError that names the fix."""
    client = make_client()

    with pytest.raises(ConfigurationError, match="empty") as raised:
        client.complete("")

    assert "pass the request text" in str(raised.value)


@pytest.mark.parametrize("prompt", [" ", "\n\t  \r\n", "\u3000\u00a0"])
def test_whitespace_prompt_rejected(make_client, prompt):
    """A prompt of whitespace alone raises ConfigurationError."""
    with pytest.raises(ConfigurationError, match="whitespace"):
        make_client().complete(prompt)


@pytest.mark.parametrize("prompt", [42, b"bytes", ["a list"], 3.5, object()])
def test_non_string_prompt_rejected(make_client, prompt):
    """A prompt that is not a str raises TypeError naming its type and the fix."""
    with pytest.raises(TypeError) as raised:
        make_client().complete(prompt)

    message = str(raised.value)
    assert type(prompt).__name__ in message
    assert "messages=[...]" in message


def test_missing_prompt_rejected(make_client):
    """A call with neither prompt nor messages raises ConfigurationError."""
    with pytest.raises(ConfigurationError, match="pass a prompt"):
        make_client().complete()


@pytest.mark.parametrize("prompt", ["\ud800", "abc\udfffdef", "\udc80\udc81"])
def test_lone_surrogate_prompt_rejected(make_client, server, prompt):
    """A prompt with a lone surrogate raises ConfigurationError before any provider call."""
    with pytest.raises(ConfigurationError) as raised:
        make_client().complete(prompt)

    message = str(raised.value)
    assert "surrogate" in message
    assert "errors='replace'" in message
    assert server.count() == 0


def test_lone_surrogate_in_messages_rejected(make_client, server):
    """A lone surrogate inside messages raises ConfigurationError naming messages."""
    messages = [{"role": "system", "content": "be brief \ud83d"}, {"role": "user", "content": "hi"}]

    with pytest.raises(ConfigurationError, match="messages") as raised:
        make_client().complete(messages=messages)

    assert "surrogate" in str(raised.value)
    assert server.count() == 0


def test_lone_surrogate_session_id_rejected(make_client, server):
    """A session id with a lone surrogate is rejected before the provider is called."""
    with pytest.raises(ConfigurationError, match="session_id"):
        make_client().complete(PROMPT, session_id="user-\udcff")

    assert server.count() == 0


@pytest.mark.parametrize("case", list(ODD_PROMPTS))
def test_odd_unicode_prompt_completes(case, make_client, log_rows):
    """Valid but unusual Unicode completes and is logged once."""
    response = make_client().complete(ODD_PROMPTS[case])

    assert response.text
    rows = log_rows()
    assert len(rows) == 1
    assert rows[0]["id"] == response.request_id


def test_megabyte_prompt_completes(make_client, log_rows):
    """A 1 MB prompt is truncated for routing, sent whole and logged."""
    prompt = ("word " * 200_000) + "What is the last word?"
    assert len(prompt.encode("utf-8")) > 1_000_000

    response = make_client().complete(prompt)

    assert response.text
    assert response.routing.input_tokens >= 200_000
    rows = log_rows()
    assert len(rows) == 1
    assert rows[0]["prompt"] is None


@pytest.mark.parametrize("value", [math.nan, -0.01, math.inf, -math.inf, "0.1", True])
@pytest.mark.parametrize("argument", ["budget", "willingness_to_pay"])
def test_invalid_money_argument_rejected(make_client, server, argument, value):
    """NaN, negative, infinite or non-numeric money arguments name the value and the fix."""
    client = make_client()

    with pytest.raises(ConfigurationError) as raised:
        client.complete(PROMPT, **{argument: value})

    message = str(raised.value)
    assert f"{argument}={value!r}" in message
    assert "pass" in message
    assert server.count() == 0


@pytest.mark.parametrize("value", [0, 0.0])
def test_zero_willingness_to_pay_rejected(make_client, value):
    """willingness_to_pay=0 would mean an infinite λ and raises ConfigurationError."""
    with pytest.raises(ConfigurationError, match="> 0"):
        make_client().route(PROMPT, willingness_to_pay=value)


def test_zero_budget_calls_cheapest(make_client):
    """budget=0 fits no model, so the cheapest is called and flagged over budget."""
    response = make_client().complete(PROMPT, budget=0.0)

    assert response.model == "openai/cheap"
    assert response.routing.over_budget


@pytest.mark.parametrize("argument", ["budget", "willingness_to_pay", "exploration", "timeout"])
@pytest.mark.parametrize("value", [math.nan, -1.0, math.inf])
def test_invalid_client_option_rejected(make_client, argument, value):
    """Client options reject NaN, negative and infinite values when constructed."""
    with pytest.raises(ConfigurationError) as raised:
        make_client(**{argument: value})

    assert f"{argument}={value!r}" in str(raised.value)


@pytest.mark.parametrize("variable", ["SMARTLLM_BUDGET", "SMARTLLM_TIMEOUT"])
@pytest.mark.parametrize("raw", ["nan", "-1", "lots"])
def test_invalid_environment_value_rejected(make_client, monkeypatch, variable, raw):
    """A bad numeric environment variable raises ConfigurationError when the client is built."""
    monkeypatch.setenv(variable, raw)
    overrides = {"timeout": None} if variable == "SMARTLLM_TIMEOUT" else {}

    with pytest.raises(ConfigurationError) as raised:
        make_client(**overrides)

    assert raw in str(raised.value)


@pytest.mark.parametrize("argument", ["models", "exclude"])
def test_unknown_model_rejected(make_client, argument):
    """An unknown model name raises UnknownModelError naming it and the pool."""
    with pytest.raises(UnknownModelError) as raised:
        make_client().route(PROMPT, **{argument: ["openai/nope"]})

    message = str(raised.value)
    assert "'openai/nope'" in message
    assert "openai/cheap" in message
    assert "Client(models=...)" in message


def test_empty_allow_list_rejected(make_client):
    """models=[] raises ConfigurationError instead of routing to nothing."""
    with pytest.raises(ConfigurationError, match=r"models=\[\]"):
        make_client().route(PROMPT, models=[])


def test_exclude_everything_rejected(make_client):
    """Excluding every allowed model raises ConfigurationError."""
    with pytest.raises(ConfigurationError, match="exclude"):
        make_client().route(PROMPT, exclude=POOL)


def test_empty_pool_rejected(home):
    """Client(models=[]) raises ConfigurationError at construction."""
    with pytest.raises(ConfigurationError, match="empty"):
        Client(models=[])


@pytest.mark.parametrize("score", [1.5, -0.1, math.nan, math.inf, "0.5", True, None])
def test_invalid_feedback_score_rejected(make_client, score):
    """A score outside [0, 1], NaN or not a number raises FeedbackError naming it."""
    client = make_client()
    response = client.complete(PROMPT)

    with pytest.raises(FeedbackError) as raised:
        client.feedback(response.request_id, score)

    message = str(raised.value)
    assert f"score={score!r}" in message
    assert "[0, 1]" in message


@pytest.mark.parametrize("request_id", ["0" * 32, "", 42, None, "x\ud800"])
def test_unknown_feedback_request_rejected(make_client, request_id):
    """Feedback for an unknown or malformed request id raises FeedbackError."""
    client = make_client()
    client.complete(PROMPT)

    with pytest.raises(FeedbackError) as raised:
        client.feedback(request_id, 1.0)

    assert repr(request_id) in str(raised.value)


def test_feedback_source_surrogate_rejected(make_client):
    """A feedback source with a lone surrogate raises FeedbackError, not UnicodeEncodeError."""
    client = make_client()
    response = client.complete(PROMPT)

    with pytest.raises(FeedbackError, match="source"):
        client.feedback(response.request_id, 1.0, source="thumbs\udc00")


# -- property-based routing tests -------------------------------------------

MONEY = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0.0, max_value=0.01),
    st.integers(min_value=-5, max_value=5),
)
NAMES = st.sampled_from([*POOL, "openai/unknown", ""])
PROMPTS = st.one_of(
    st.text(min_size=0, max_size=80),
    st.text(
        alphabet=st.characters(min_codepoint=0xD7F0, max_codepoint=0xE010, exclude_categories=()),
        max_size=8,
    ),
    st.integers(),
)
DOCUMENTED_ERRORS = (ConfigurationError, TypeError, BudgetExceededError)


@pytest.fixture(scope="module")
def shared_client(server, router_dir, tmp_path_factory):
    """One client for every example of a property test, so the embedder loads once."""
    client = Client(
        models=pool_entries(server),
        router=router_dir,
        random_state=0,
        timeout=5.0,
        retry_base_delay=0.01,
        log_path=tmp_path_factory.mktemp("property-log") / "log.sqlite3",
    )
    yield client
    client.close()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    prompt=PROMPTS,
    budget=MONEY,
    willingness_to_pay=MONEY,
    models=st.one_of(st.none(), st.lists(NAMES, max_size=4)),
    exclude=st.one_of(st.none(), st.lists(NAMES, max_size=2)),
    strict=st.booleans(),
)
def test_route_properties(
    shared_client, prompt, budget, willingness_to_pay, models, exclude, strict
):
    """route() returns a valid decision or raises a documented error."""
    try:
        decision = shared_client.route(
            prompt,
            budget=budget,
            willingness_to_pay=willingness_to_pay,
            models=models,
            exclude=exclude,
            strict=strict,
        )
    except DOCUMENTED_ERRORS:
        return

    assert isinstance(decision, RoutingDecision)
    allowed = set(models if models is not None else POOL) - set(exclude or [])
    assert set(decision.probabilities) == allowed
    assert decision.model in allowed
    assert math.fsum(decision.probabilities.values()) == pytest.approx(1.0, abs=1e-9)
    assert all(p >= 0 for p in decision.probabilities.values())
    assert decision.propensity == decision.probabilities[decision.model]
    assert decision.propensity > 0
    assert set(decision.fallback_order) <= allowed
    assert decision.fallback_order[0] == decision.model
    if budget is not None and not decision.over_budget:
        assert decision.predicted_cost[decision.model] <= budget


@pytest.fixture(scope="module")
def logged_request_id(shared_client):
    return shared_client.complete(PROMPT).request_id


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(score=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 3)))
def test_feedback_score_properties(shared_client, logged_request_id, score):
    """feedback() accepts exactly the scores in [0, 1] and rejects every other number."""
    valid = math.isfinite(score) and 0 <= score <= 1
    if valid:
        shared_client.feedback(logged_request_id, score)
    else:
        with pytest.raises(FeedbackError):
            shared_client.feedback(logged_request_id, score)
