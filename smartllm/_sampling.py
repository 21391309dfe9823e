"""The choice rule: from router outputs and a budget to a probability per model.

Given, per model, the policy logit at λ, the predicted quality and the
predicted cost of this request:

1. The feasible set is the allowed models whose predicted cost is at most the
   budget. When it is empty, the cheapest allowed model is chosen with
   probability 1 and the decision is flagged ``over_budget``.
2. The policy's support is the feasible models that no cheaper feasible model
   beats or ties on predicted quality (the cost-quality frontier). A model
   outside it costs more and is predicted to do worse than another feasible
   model, so it is never the best choice at any λ >= 0.
3. The policy part is ``softmax(logits / temperature)`` over that support.
4. Exploration mixes in ``exploration`` times the uniform distribution over all
   feasible models, so every feasible model keeps a probability of at least
   ``exploration / n_feasible``.
5. Each feasible cold-start model (one the router was not trained on) is then
   raised to at least ``min_explore``, taking the mass from the other models in
   proportion to their probability.

Raising the budget only adds models to the feasible set, and a model that
joins the frontier has a higher predicted quality than every cheaper member.
So the expected predicted quality of the policy part, and the predicted
quality of its most likely model, never decrease when the budget grows. The
exploration share (steps 4 and 5) can lower the expected predicted quality of
the whole distribution by at most that share times the spread of predicted
quality among feasible models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Cold-start floors together never take more than this share of the mass.
MAX_COLD_START_SHARE = 0.5


@dataclass(frozen=True)
class ChoiceDistribution:
    """Probabilities over the pool and the sets they were computed from."""

    probabilities: np.ndarray  # (K,) float64, zero outside the feasible set
    policy: np.ndarray  # (K,) float64, the policy part alone
    feasible: np.ndarray  # (K,) bool
    frontier: np.ndarray  # (K,) bool
    over_budget: bool


def frontier_mask(quality: np.ndarray, cost: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Mark the candidates that no cheaper candidate beats or ties on quality.

    Candidates are visited by cost, and among equal costs by quality from
    highest to lowest, so of two models with the same cost only the better one
    is kept.
    """
    indices = np.flatnonzero(candidates)
    order = sorted(indices, key=lambda i: (cost[i], -quality[i], i))
    mask = np.zeros(len(quality), dtype=bool)
    best = -np.inf
    for i in order:
        if quality[i] > best:
            mask[i] = True
            best = quality[i]
    return mask


def softmax(values: np.ndarray, temperature: float) -> np.ndarray:
    """Return the softmax of ``values / temperature``; NaN counts as -inf.

    When every value is -inf the result is uniform, so a broken router output
    still yields a valid distribution.
    """
    scaled = np.where(np.isnan(values), -np.inf, values.astype(np.float64) / temperature)
    top = scaled.max() if scaled.size else -np.inf
    if not np.isfinite(top):
        finite_top = np.isposinf(scaled)
        if finite_top.any():
            return finite_top / finite_top.sum()
        return np.full(len(values), 1.0 / max(len(values), 1))
    weights = np.exp(scaled - top)
    return weights / weights.sum()


def choice_distribution(
    logits: np.ndarray,
    quality: np.ndarray,
    cost: np.ndarray,
    allowed: np.ndarray,
    budget: float | None,
    *,
    exploration: float,
    temperature: float = 1.0,
    cold_start: np.ndarray | None = None,
    min_explore: float = 0.0,
) -> ChoiceDistribution:
    """Compute the probability of choosing each model; see the module docstring."""
    size = len(logits)
    allowed = np.asarray(allowed, dtype=bool)
    if not allowed.any():
        raise ValueError("allowed selects no model")

    feasible = allowed.copy()
    if budget is not None:
        feasible &= cost <= budget

    if not feasible.any():
        cheapest = _cheapest(quality, cost, allowed)
        onehot = np.zeros(size)
        onehot[cheapest] = 1.0
        only = onehot.astype(bool)
        return ChoiceDistribution(onehot, onehot.copy(), only, only, over_budget=True)

    frontier = frontier_mask(quality, cost, feasible)
    policy = np.zeros(size)
    policy[frontier] = softmax(logits[frontier], temperature)

    uniform = feasible / feasible.sum()
    probabilities = (1.0 - exploration) * policy + exploration * uniform

    if cold_start is not None and min_explore > 0:
        probabilities = _apply_floor(probabilities, feasible & cold_start, min_explore)
    return ChoiceDistribution(probabilities, policy, feasible, frontier, over_budget=False)


def _cheapest(quality: np.ndarray, cost: np.ndarray, allowed: np.ndarray) -> int:
    indices = np.flatnonzero(allowed)
    return int(min(indices, key=lambda i: (cost[i], -quality[i], i)))


def _apply_floor(probabilities: np.ndarray, floored: np.ndarray, floor: float) -> np.ndarray:
    count = int(floored.sum())
    if count == 0:
        return probabilities
    floor = min(floor, MAX_COLD_START_SHARE / count)
    raised = floored & (probabilities < floor)
    if not raised.any():
        return probabilities

    result = probabilities.copy()
    result[raised] = floor
    donors = ~raised & (result > 0)
    spare = 1.0 - result[raised].sum()
    result[donors] *= spare / result[donors].sum()
    return result


def sample_index(probabilities: np.ndarray, rng: np.random.Generator) -> int:
    """Draw one index with the given probabilities."""
    cumulative = np.cumsum(probabilities)
    draw = rng.random() * cumulative[-1]
    index = int(np.searchsorted(cumulative, draw, side="right"))
    # Guard against the draw landing on the final edge by rounding.
    index = min(index, len(probabilities) - 1)
    while probabilities[index] <= 0:
        index -= 1
    return index


def fallback_order(chosen: int, distribution: ChoiceDistribution, quality: np.ndarray) -> list[int]:
    """Return the chosen model then the other feasible models, most probable first."""
    others = [int(i) for i in np.flatnonzero(distribution.feasible) if i != chosen]
    others.sort(key=lambda i: (-distribution.probabilities[i], -quality[i], i))
    return [chosen, *others]
