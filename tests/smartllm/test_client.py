"""Routing and completion tests of Client against the local OpenAI-compatible server."""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pytest

from smartllm import (
    BudgetExceededError,
    Client,
    ConfigurationError,
    Response,
    RoutingDecision,
    UnknownModelError,
)

from shared import POOL, pool_entries

PROMPT = "Prove that the square root of 2 is irrational."
# Predicted costs of PROMPT with the test router: cheap 8.1e-5, mid 8.1e-4,
# strong 3.0e-3 USD.
BUDGET_CHEAP_AND_MID = 0.002
BUDGET_CHEAP_ONLY = 0.0005


def test_complete_returns_served_answer(make_client, server):
    """complete() returns the chosen model's answer, cost and request id."""
    client = make_client()
    response = client.complete(PROMPT)
    assert isinstance(response, Response)
    assert response.model in POOL
    assert response.text == server.answer_for(response.model.split("/")[1])
    assert response.cost > 0
    assert len(response.request_id) == 32
    assert response.fallback_chain == [response.model]
    assert isinstance(response.routing, RoutingDecision)


def test_route_calls_no_model(make_client, server):
    """route() returns a decision and sends no request to the server."""
    client = make_client()
    before = server.count()
    decision = client.route(PROMPT, willingness_to_pay=0.05)
    assert server.count() == before
    assert decision.model in POOL
    assert math.isclose(sum(decision.probabilities.values()), 1.0)
    assert decision.lam == pytest.approx(20.0)
    assert set(decision.predicted_cost) == set(POOL)


def test_budget_is_a_hard_ceiling(make_client):
    """No draw picks a model whose predicted cost exceeds the budget."""
    client = make_client(exploration=0.5)
    for _ in range(40):
        decision = client.route(PROMPT, budget=BUDGET_CHEAP_AND_MID)
        assert decision.predicted_cost[decision.model] <= BUDGET_CHEAP_AND_MID
        assert decision.probabilities["openai/strong"] == 0.0


def test_budget_only_maximises_quality(make_client):
    """With a budget alone λ is 0 and the best feasible model gets most mass."""
    client = make_client()
    decision = client.route(PROMPT, budget=BUDGET_CHEAP_AND_MID)
    assert decision.lam == 0.0
    assert decision.willingness_to_pay is None
    assert max(decision.probabilities, key=decision.probabilities.get) == "openai/mid"


def test_willingness_to_pay_sets_lambda(make_client):
    """A small willingness to pay makes the cheap model the most likely choice."""
    client = make_client()
    stingy = client.route(PROMPT, willingness_to_pay=0.0001)
    generous = client.route(PROMPT, willingness_to_pay=100.0)
    assert stingy.lam == pytest.approx(10_000.0)
    assert max(stingy.probabilities, key=stingy.probabilities.get) == "openai/cheap"
    assert max(generous.probabilities, key=generous.probabilities.get) == "openai/strong"


def test_client_default_budget_applies(make_client):
    """A client-level budget applies when the call sets none."""
    client = make_client(budget=BUDGET_CHEAP_ONLY)
    decision = client.route(PROMPT)
    assert decision.budget == BUDGET_CHEAP_ONLY
    assert decision.model == "openai/cheap"


def test_budget_from_environment(make_client, monkeypatch):
    """SMARTLLM_BUDGET sets the default budget."""
    monkeypatch.setenv("SMARTLLM_BUDGET", str(BUDGET_CHEAP_ONLY))
    client = make_client()
    assert client.budget == BUDGET_CHEAP_ONLY


def test_over_budget_picks_cheapest(make_client, server):
    """When nothing fits, the cheapest model serves and the response is flagged."""
    client = make_client()
    response = client.complete(PROMPT, budget=1e-7)
    assert response.model == "openai/cheap"
    assert response.over_budget is True
    assert response.routing.propensity == 1.0


def test_over_budget_strict_raises(make_client):
    """strict=True raises BudgetExceededError naming the cheapest model."""
    client = make_client()
    with pytest.raises(BudgetExceededError, match="openai/cheap"):
        client.complete(PROMPT, budget=1e-7, strict=True)


def test_allow_list_restricts_choice(make_client):
    """models= limits the draw to the listed models."""
    client = make_client(exploration=0.5)
    for _ in range(20):
        decision = client.route(PROMPT, models=["openai/mid", "openai/strong"])
        assert decision.model in {"openai/mid", "openai/strong"}
        assert set(decision.probabilities) == {"openai/mid", "openai/strong"}


def test_exclude_removes_model(make_client):
    """exclude= removes a model from the draw."""
    client = make_client(exploration=0.5)
    for _ in range(20):
        decision = client.route(PROMPT, exclude=["openai/strong"])
        assert decision.model != "openai/strong"
        assert "openai/strong" not in decision.probabilities


@pytest.mark.parametrize("argument", ["models", "exclude"])
def test_unknown_model_names_raise(make_client, argument):
    """A name outside the pool raises UnknownModelError naming it."""
    client = make_client()
    with pytest.raises(UnknownModelError, match="openai/nonexistent"):
        client.route(PROMPT, **{argument: ["openai/nonexistent"]})


def test_empty_allow_list_raises(make_client):
    """models=[] raises ConfigurationError."""
    client = make_client()
    with pytest.raises(ConfigurationError, match="models"):
        client.route(PROMPT, models=[])


def test_exclude_everything_raises(make_client):
    """Excluding every model raises ConfigurationError."""
    client = make_client()
    with pytest.raises(ConfigurationError, match="exclude"):
        client.route(PROMPT, exclude=POOL)


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t"])
def test_empty_prompt_raises(make_client, prompt):
    """An empty or whitespace prompt raises ConfigurationError."""
    client = make_client()
    with pytest.raises(ConfigurationError, match="empty"):
        client.route(prompt)


@pytest.mark.parametrize("prompt", [42, b"bytes", ["list"]])
def test_non_string_prompt_raises(make_client, prompt):
    """A prompt that is not a str raises TypeError naming its type."""
    client = make_client()
    with pytest.raises(TypeError, match=type(prompt).__name__):
        client.route(prompt)


@pytest.mark.parametrize("value", [float("nan"), -0.01, float("inf"), "0.1", True])
def test_invalid_budget_raises(make_client, value):
    """A NaN, negative, infinite or non-number budget raises naming the value."""
    client = make_client()
    with pytest.raises(ConfigurationError, match="budget=") as caught:
        client.route(PROMPT, budget=value)
    assert repr(value) in str(caught.value)


@pytest.mark.parametrize("value", [float("nan"), -1.0, 0.0, float("inf")])
def test_invalid_willingness_to_pay_raises(make_client, value):
    """A NaN, non-positive or infinite willingness to pay raises naming the value."""
    client = make_client()
    with pytest.raises(ConfigurationError, match="willingness_to_pay=") as caught:
        client.route(PROMPT, willingness_to_pay=value)
    assert repr(value) in str(caught.value)


def test_zero_exploration_warns(make_client):
    """exploration=0 warns that retraining cannot learn about untried models."""
    with pytest.warns(UserWarning, match="exploration=0"):
        make_client(exploration=0.0)


def test_default_exploration_does_not_warn(make_client):
    """The default exploration share emits no warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_client()


def test_exploration_gives_every_feasible_model_mass(make_client):
    """Each feasible model has probability at least ε / n_feasible."""
    client = make_client(exploration=0.3)
    decision = client.route(PROMPT, budget=BUDGET_CHEAP_AND_MID)
    assert decision.probabilities["openai/cheap"] >= 0.3 / 2 - 1e-12
    assert decision.probabilities["openai/mid"] >= 0.3 / 2 - 1e-12


def test_random_state_repeats_draws(make_client):
    """Two clients with the same seed make the same choices."""
    first = make_client(random_state=7, exploration=0.5)
    second = make_client(random_state=7, exploration=0.5)
    draws_first = [first.route(PROMPT).model for _ in range(10)]
    draws_second = [second.route(PROMPT).model for _ in range(10)]
    assert draws_first == draws_second


def test_model_list_uses_router_columns(server, router_dir, home):
    """models= as a list of ids routes among them without cold start."""
    client = Client(models=["openai/cheap", "openai/mid"], router=router_dir)
    decision = client.route(PROMPT)
    assert set(decision.probabilities) == {"openai/cheap", "openai/mid"}
    assert decision.cold_start == []


def test_cold_start_like_copies_predictions(make_client, server):
    """A new model with like= gets that model's predictions and a minimum share."""
    entries = pool_entries(server)
    entries["openai/newcomer"] = {
        "api_base": server.url,
        "api_key": "test-key",
        "like": "openai/strong",
        "price": {"input_per_million": 0.1, "output_per_million": 0.4},
    }
    client = make_client(models=entries, min_explore=0.1)
    decision = client.route(PROMPT)
    assert decision.cold_start == ["openai/newcomer"]
    assert decision.predicted_quality["openai/newcomer"] == pytest.approx(
        decision.predicted_quality["openai/strong"]
    )
    assert decision.predicted_cost["openai/newcomer"] < decision.predicted_cost["openai/mid"]
    assert decision.probabilities["openai/newcomer"] >= 0.1 - 1e-12


def test_cold_start_price_prior(make_client, server):
    """A new model without like= takes the predictions of the nearest-priced model."""
    entries = pool_entries(server)
    entries["openai/pricey"] = {
        "api_base": server.url,
        "api_key": "test-key",
        "price": {"input_per_token": 4e-6, "output_per_token": 1.6e-5},
    }
    client = make_client(models=entries, min_explore=0.05)
    decision = client.route(PROMPT)
    assert decision.predicted_quality["openai/pricey"] == pytest.approx(
        decision.predicted_quality["openai/strong"]
    )
    assert decision.probabilities["openai/pricey"] >= 0.05 - 1e-12


def test_cold_start_completion_served(make_client, server):
    """A cold-start model can serve a completion through its own api_base."""
    entries = {
        "openai/newcomer": {
            "api_base": server.url,
            "api_key": "test-key",
            "like": "openai/mid",
            "price": {"input_per_million": 1, "output_per_million": 4},
        }
    }
    client = make_client(models=entries)
    response = client.complete(PROMPT)
    assert response.model == "openai/newcomer"
    assert response.text == server.answer_for("newcomer")


def test_unpriced_new_model_raises(make_client, server):
    """A model that neither litellm nor the router can price raises ConfigurationError."""
    entries = pool_entries(server)
    entries["openai/mystery"] = {"api_base": server.url, "api_key": "test-key"}
    client = make_client(models=entries)
    with pytest.raises(ConfigurationError, match="price"):
        client.route(PROMPT)


def test_like_must_name_router_model(make_client, server):
    """like= naming a model the router does not know raises ConfigurationError."""
    entries = pool_entries(server)
    entries["openai/x"] = {"like": "openai/unknown", "price": {
        "input_per_token": 1e-6, "output_per_token": 1e-6}}
    client = make_client(models=entries)
    with pytest.raises(ConfigurationError, match="like="):
        client.route(PROMPT)


def test_model_key_renames_litellm_call(make_client, server):
    """The pool key 'model' sets the litellm id called for a pool name."""
    entries = pool_entries(server)
    entries["openai/cheap"]["model"] = "openai/renamed"
    client = make_client(models=entries)
    response = client.complete(PROMPT, models=["openai/cheap"])
    assert response.model == "openai/cheap"
    assert response.text == server.answer_for("renamed")
    assert server.requests[-1].model == "renamed"


def test_pool_params_reach_provider(make_client, server):
    """Call keyword arguments reach the provider request body."""
    client = make_client()
    client.complete(PROMPT, temperature=0.25, max_tokens=50)
    body = server.requests[-1].body
    assert body["temperature"] == 0.25
    assert body["max_tokens"] == 50


def test_max_tokens_caps_predicted_cost(make_client):
    """max_tokens caps the predicted output tokens used for the cost."""
    client = make_client()
    decision = client.route(PROMPT, max_tokens=10)
    assert decision.predicted_output_tokens["openai/strong"] == 10


def test_messages_route_on_last_user_message(make_client, server):
    """messages= sends the whole conversation and counts every message's tokens."""
    client = make_client()
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi"},
        {"role": "user", "content": PROMPT},
    ]
    response = client.complete(messages=messages)
    assert server.requests[-1].body["messages"] == messages
    single = client.route(PROMPT)
    assert response.routing.input_tokens > single.input_tokens


def test_messages_without_user_raise(make_client):
    """messages= without a user message raises ConfigurationError."""
    client = make_client()
    with pytest.raises(ConfigurationError, match="user"):
        client.route(messages=[{"role": "system", "content": "hi"}])


def test_prompt_and_messages_together_raise(make_client):
    """Passing both prompt and messages raises ConfigurationError."""
    client = make_client()
    with pytest.raises(ConfigurationError, match="either"):
        client.route(PROMPT, messages=[{"role": "user", "content": "x"}])


def test_session_keeps_model(make_client):
    """Turns of one session stay on the model that served the first turn."""
    client = make_client(exploration=0.9, random_state=3)
    first = client.complete(PROMPT, session_id="chat-1")
    later = [client.complete(f"turn {i}", session_id="chat-1") for i in range(5)]
    assert all(r.model == first.model for r in later)
    assert all(r.routing.session_pinned for r in later)
    assert all(r.routing.propensity == 1.0 for r in later)


def test_session_yields_to_budget(make_client):
    """A session's model is dropped when the call's budget excludes it."""
    client = make_client()
    client.complete(PROMPT, session_id="chat-2", models=["openai/strong"])
    response = client.complete(PROMPT, session_id="chat-2", budget=BUDGET_CHEAP_ONLY)
    assert response.model == "openai/cheap"
    assert response.routing.session_pinned is False


def test_evaluator_scores_completion(make_client, log_rows, home):
    """The evaluator's score is stored as feedback with source 'evaluator'."""
    import sqlite3

    seen = []

    def evaluator(prompt: str, text: str) -> float:
        seen.append((prompt, text))
        return 0.75

    client = make_client(evaluator=evaluator)
    response = client.complete(PROMPT)
    assert seen == [(PROMPT, response.text)]
    connection = sqlite3.connect(home / "log.sqlite3")
    rows = connection.execute("SELECT request_id, score, source FROM feedback").fetchall()
    connection.close()
    assert rows == [(response.request_id, 0.75, "evaluator")]


def test_failing_evaluator_keeps_completion(make_client, caplog):
    """An evaluator that raises is logged at WARNING and the response returns."""

    def evaluator(prompt: str, text: str) -> float:
        raise RuntimeError("grader down")

    client = make_client(evaluator=evaluator)
    response = client.complete(PROMPT)
    assert response.text
    assert "grader down" in caplog.text


def test_reserved_kwargs_rejected(make_client):
    """complete(model=...) raises TypeError, because the router picks the model."""
    client = make_client()
    with pytest.raises(TypeError, match="model"):
        client.complete(PROMPT, model="openai/cheap")


def test_predicted_cost_formula(make_client):
    """Predicted cost is input tokens times input price plus output tokens times output price."""
    from shared import OUTPUT_TOKENS, PRICES

    client = make_client()
    decision = client.route(PROMPT)
    for name, (input_price, output_price) in PRICES.items():
        expected = decision.input_tokens * input_price + OUTPUT_TOKENS * output_price
        assert decision.predicted_cost[name] == pytest.approx(expected)


def test_routing_decision_features_stored(make_client):
    """The decision carries the 392-wide router feature row for the log."""
    client = make_client()
    decision = client.route(PROMPT)
    assert np.shape(decision.features) == (1, 392)


def test_floor_starts_with_first_feedback(make_client, server, monkeypatch):
    """Models without feedback get the min_explore floor once any feedback is logged."""
    import smartllm._client as client_module

    monkeypatch.setattr(client_module, "FLOOR_RECOUNT_SECONDS", 0.0)
    client = make_client(models=pool_entries(server), exploration=0.0, min_explore=0.1)
    before = client.route(PROMPT)
    assert min(before.probabilities.values()) < 0.1

    response = client.complete(PROMPT)
    client.feedback(response.request_id, score=1.0)
    # The recount runs in a background thread: the first route starts it.
    deadline = time.monotonic() + 10.0
    after = client.route(PROMPT)
    while min(after.probabilities.values()) < 0.1 - 1e-12 and time.monotonic() < deadline:
        time.sleep(0.05)
        after = client.route(PROMPT)
    for model, probability in after.probabilities.items():
        assert probability >= 0.1 - 1e-12, model
