"""The choice rule: from router outputs and a budget to a probability per model.

Given, per model, the policy logit at λ, the predicted quality and the
predicted cost of this request:

1. The feasible set is the allowed models whose predicted cost is at most the
   budget. When it is empty, the cheapest allowed model is chosen with
   probability 1 and the decision is flagged ``over_budget``.
2. Without a budget, the policy part is ``softmax(logits / temperature)`` over
   the allowed models: the trained policy decides alone.
3. With a budget, the candidate supports are the nested "cheapest j allowed
   models" sets that fit the budget. Each gets the policy softmax over its
   members and an expected predicted quality (sum of probability times
   predicted quality). The policy part is the softmax over the largest of the
   sets whose expected predicted quality is the maximum. When the policy
   agrees with the quality predictions, that is simply every feasible model.
4. Exploration mixes in ``exploration`` times the uniform distribution over all
   feasible models, so before step 5 every feasible model has a probability
   of at least ``exploration / n_feasible``.
5. Each feasible model the caller flags is then raised to at least
   ``min_explore``, taking the mass from the other models in proportion to
   their probability. The client flags cold-start models (the router was not
   trained on them) and models with too little logged feedback.

Raising the budget only adds candidate sets in step 3, and the maximum over
more sets cannot be smaller, so the expected predicted quality of the policy
part never decreases when the budget grows. The exploration share (steps 4
and 5) can lower the expected predicted quality of the whole distribution by
at most that share times the spread of predicted quality among feasible
models.
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
    support: np.ndarray  # (K,) bool, the models the policy part spreads over
    over_budget: bool


def budget_support(
    logits: np.ndarray,
    quality: np.ndarray,
    cost: np.ndarray,
    allowed: np.ndarray,
    feasible: np.ndarray,
    temperature: float,
) -> np.ndarray:
    """Return the policy's support under a budget (step 3 of the module docstring)."""
    order = sorted(np.flatnonzero(allowed), key=lambda i: (cost[i], -quality[i], i))
    best_value, best_set = -np.inf, None
    members = np.zeros(len(logits), dtype=bool)
    for i in order:
        if not feasible[i]:
            break
        members[i] = True
        value = float(softmax(logits[members], temperature) @ quality[members])
        # Ties go to the larger set, which leaves more of the choice to the policy.
        if value >= best_value - 1e-12:
            best_value, best_set = max(value, best_value), members.copy()
    return best_set


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

    if budget is None:
        support = feasible
    else:
        support = budget_support(logits, quality, cost, allowed, feasible, temperature)
    policy = np.zeros(size)
    policy[support] = softmax(logits[support], temperature)

    uniform = feasible / feasible.sum()
    probabilities = (1.0 - exploration) * policy + exploration * uniform

    if cold_start is not None and min_explore > 0:
        probabilities = _apply_floor(probabilities, feasible & cold_start, min_explore)
    return ChoiceDistribution(probabilities, policy, feasible, support, over_budget=False)


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
