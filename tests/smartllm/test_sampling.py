"""Properties of the choice rule: budget ceiling, policy support and monotone quality."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smartllm._sampling import choice_distribution, sample_index, softmax

EXPLORATION = 0.05


@st.composite
def pools(draw):
    size = draw(st.integers(2, 7))
    unit = st.floats(0.0, 1.0, allow_nan=False)
    quality = np.array(draw(st.lists(unit, min_size=size, max_size=size)))
    cost = np.array(draw(st.lists(st.floats(1e-6, 1.0), min_size=size, max_size=size)))
    logits = np.array(draw(st.lists(st.floats(-10, 10), min_size=size, max_size=size)))
    budgets = sorted(draw(st.lists(st.floats(0.0, 1.2), min_size=2, max_size=2)))
    return quality, cost, logits, budgets


def _distribution(quality, cost, logits, budget, exploration=EXPLORATION):
    allowed = np.ones(len(quality), dtype=bool)
    return choice_distribution(logits, quality, cost, allowed, budget, exploration=exploration)


@settings(max_examples=300, deadline=None)
@given(pools())
def test_larger_budget_never_lowers_policy_quality(pool):
    """Expected predicted quality of the policy part never drops as the budget grows.

    Expected quality here is sum_t policy(t) * predicted_quality(t), with the
    policy part before ε-exploration, over the allowed models.
    """
    quality, cost, logits, (small, large) = pool
    low = _distribution(quality, cost, logits, small)
    high = _distribution(quality, cost, logits, large)
    if low.over_budget:
        return  # the cheapest is forced; see the over-budget test below
    assert high.policy @ quality >= low.policy @ quality - 1e-9


@settings(max_examples=300, deadline=None)
@given(pools())
def test_exploration_loss_is_bounded(pool):
    """With exploration, a larger budget lowers expected quality by at most ε times the spread."""
    quality, cost, logits, (small, large) = pool
    low = _distribution(quality, cost, logits, small)
    high = _distribution(quality, cost, logits, large)
    if low.over_budget:
        return
    spread = quality[high.feasible].max() - quality[high.feasible].min()
    drop = low.probabilities @ quality - high.probabilities @ quality
    assert drop <= EXPLORATION * spread + 1e-9


@settings(max_examples=200, deadline=None)
@given(pools())
def test_probabilities_respect_budget(pool):
    """Models over the budget get probability 0 unless nothing fits."""
    quality, cost, logits, (small, _) = pool
    result = _distribution(quality, cost, logits, small)
    assert result.probabilities.sum() == pytest.approx(1.0)
    if not result.over_budget:
        assert np.all(result.probabilities[cost > small] == 0)
        assert np.all(result.probabilities[cost <= small] >= EXPLORATION / (cost <= small).sum() - 1e-12)


def test_over_budget_picks_cheapest_model():
    """With nothing feasible, the cheapest allowed model gets probability 1."""
    quality = np.array([0.9, 0.1, 0.5])
    cost = np.array([3.0, 1.0, 2.0])
    result = _distribution(quality, cost, np.zeros(3), budget=0.5)
    assert result.over_budget
    assert result.probabilities.tolist() == [0.0, 1.0, 0.0]


def test_no_budget_follows_policy():
    """Without a budget the policy part is the softmax over every allowed model."""
    quality = np.array([0.9, 0.2, 0.5])
    cost = np.array([3.0, 1.0, 2.0])
    logits = np.array([0.0, 2.0, 1.0])
    result = _distribution(quality, cost, logits, budget=None, exploration=0.0)
    expected = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(result.policy, expected)


def test_budget_keeps_policy_when_it_agrees():
    """Under a budget, a policy that ranks like predicted quality keeps every fitting model."""
    quality = np.array([0.3, 0.6, 0.9])
    cost = np.array([1.0, 2.0, 3.0])
    logits = np.array([0.0, 1.0, 2.0])
    result = _distribution(quality, cost, logits, budget=2.5, exploration=0.0)
    assert result.support.tolist() == [True, True, False]
    np.testing.assert_allclose(result.policy[:2], np.exp([0.0, 1.0]) / np.exp([0.0, 1.0]).sum())


def test_budget_drops_model_that_lowers_quality():
    """Under a budget, a pricier model the policy favours but predicts worse is left out."""
    quality = np.array([0.8, 0.2])
    cost = np.array([1.0, 2.0])
    logits = np.array([0.0, 5.0])
    result = _distribution(quality, cost, logits, budget=3.0, exploration=0.0)
    assert result.support.tolist() == [True, False]
    assert result.policy.tolist() == [1.0, 0.0]


def test_cold_start_floor():
    """A cold-start model gets at least min_explore, and the total stays 1."""
    quality = np.array([0.9, 0.2])
    cost = np.array([1.0, 2.0])
    result = choice_distribution(
        np.array([10.0, -10.0]), quality, cost, np.ones(2, dtype=bool), None,
        exploration=0.0, cold_start=np.array([False, True]), min_explore=0.2,
    )
    assert result.probabilities[1] == pytest.approx(0.2)
    assert result.probabilities.sum() == pytest.approx(1.0)


def test_softmax_handles_nan():
    """NaN logits count as -inf and an all-NaN row is uniform."""
    assert softmax(np.array([np.nan, 0.0]), 1.0).tolist() == [0.0, 1.0]
    assert softmax(np.array([np.nan, np.nan]), 1.0).tolist() == [0.5, 0.5]


def test_sample_index_frequencies():
    """Draws follow the probabilities and never pick a zero-probability model."""
    rng = np.random.default_rng(0)
    probabilities = np.array([0.0, 0.25, 0.75, 0.0])
    draws = np.array([sample_index(probabilities, rng) for _ in range(4000)])
    assert set(draws.tolist()) == {1, 2}
    assert abs((draws == 2).mean() - 0.75) < 0.03
