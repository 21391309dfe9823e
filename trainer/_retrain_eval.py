"""Off-policy comparison of candidate routers with the current one on held-out logs.

Every policy is evaluated from its exported ``router.onnx`` as the client
serves it without exploration and without a budget:
``softmax(logits / softmax_temperature)`` over the allowed models of each
logged request. Budgets are not applied. The DR value at λ is
``mean_i Σ_t π(t | x_i, λ) (A_i(t) - λ C_i(t))`` with pseudo-outcomes from an
outcome model fitted on the training slice only.

Promotion rule, with D(λ) the paired DR value difference candidate minus
current router, w(λ) the share of held-out requests at each grid λ (each
request's logged λ split between its two neighbouring grid points as the
router interpolates them) and m the number of candidates:

1. the traffic-weighted mean Σ w(λ) D(λ) is > 0 and the lower end of its
   bootstrap confidence interval at level 1 - 0.05 / m (95%, Bonferroni
   adjusted for choosing among m candidates) is above 0;
2. at no grid λ with w(λ) > 0 is the upper end of the 95% interval of D(λ)
   below 0.

Weighting by the logged λ judges a router on the trade-off the application
asks for: utilities at λ = 10,000 are hundreds of times larger than at
λ = 10, so an unweighted mean over the grid would be decided by the largest
λ whatever the traffic uses.

Among the candidates that pass, the one with the largest mean difference wins.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from smartllm._router import Router

from ._baselines import DirectMethodRouter
from ._dr import dr_pseudo_outcomes
from ._retrain_data import LoggedRows

logger = logging.getLogger(__name__)

CONFIDENCE = 0.95
BATCH_ROWS = 8192


@dataclass
class HeldOut:
    """DR pseudo-outcomes (n, E) of the held-out rows over the evaluation models."""

    quality: np.ndarray
    cost: np.ndarray
    allowed: np.ndarray


def held_out_targets(train: LoggedRows, test: LoggedRows, p_min: float) -> HeldOut:
    """Fit the outcome model on ``train`` and return DR pseudo-outcomes of ``test``."""
    outcome = DirectMethodRouter(train.models).fit(
        train.X, train.chosen, train.quality, train.cost
    )
    predicted = outcome.outcome_model_.predict(test.X)
    quality, cost = dr_pseudo_outcomes(
        test.chosen, test.quality, test.cost, test.propensity,
        predicted["quality"], predicted["cost"], p_min,
    )
    return HeldOut(quality, cost, test.allowed)


def router_columns(
    router: Router, models: list[str], prices: dict[str, tuple[float, float, str]]
) -> np.ndarray:
    """Return, per evaluation model, the router output column the client would use.

    A model the router lists uses its own column. Another model uses the
    column of the router model with the nearest price, as the client does for a
    pool model without ``like=``, and -1 when no price is known.
    """
    # NOTE: a pool entry's like= is not in the log, so a model mapped with like=
    # is evaluated with the nearest-priced column, which may differ from the
    # column the client used.
    known = {m: i for i, m in enumerate(router.models)}
    priced = [
        (m, prices[m][0] + prices[m][1]) for m in router.models if m in prices
    ]
    columns = []
    for model in models:
        if model in known:
            columns.append(known[model])
        elif model in prices and priced:
            blended = max(prices[model][0] + prices[model][1], 1e-12)
            nearest = min(
                priced,
                key=lambda item: (abs(math.log(blended) - math.log(max(item[1], 1e-12))), item[0]),
            )
            columns.append(known[nearest[0]])
        else:
            columns.append(-1)
    return np.array(columns, dtype=np.int64)


def router_logits(
    router: Router,
    rows: LoggedRows,
    grid: np.ndarray,
    prices: dict[str, tuple[float, float, str]],
) -> np.ndarray:
    """Return the router's logits over the allowed models, (L, n, E), per grid λ.

    As in the client without a budget, logits are divided by the router's
    temperature. A model that is not allowed or has no router column gets -inf.
    """
    models = rows.models
    columns = router_columns(router, models, prices)
    safe = np.maximum(columns, 0)
    temperature = router.temperature
    result = np.zeros((grid.size, rows.X.shape[0], len(models)))
    for start in range(0, rows.X.shape[0], BATCH_ROWS):
        stop = min(start + BATCH_ROWS, rows.X.shape[0])
        batch = np.ascontiguousarray(rows.X[start:stop], dtype=np.float32)
        allowed = rows.allowed[start:stop] & (columns >= 0)
        for k, lam in enumerate(grid):
            (logits,) = router.session.run(
                ["logits"],
                {"embedding": batch, "lam": np.full(batch.shape[0], lam, np.float32)},
            )
            mapped = np.where(allowed, logits[:, safe] / temperature, -np.inf)
            result[k, start:stop] = mapped
    return result



def uniform_logits(n_rows: int, grid: np.ndarray, n_models: int) -> np.ndarray:
    """Return logits (L, n, E) of uniform choice, the baseline when no router loads."""
    return np.zeros((grid.size, n_rows, n_models))


def _restrict(logits: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Softmax of the logits over each row's allowed models, uniform when none is mapped."""
    masked = np.where(allowed[None], logits, -np.inf)
    top = masked.max(axis=-1, keepdims=True)
    finite = np.isfinite(top)
    weights = np.where(finite, np.exp(masked - np.where(finite, top, 0.0)), 0.0)
    total = weights.sum(axis=-1, keepdims=True)
    uniform = np.broadcast_to(allowed[None] / allowed.sum(axis=-1, keepdims=True), weights.shape)
    return np.where(total > 0, weights / np.where(total > 0, total, 1.0), uniform)


def row_values(logits: np.ndarray, targets: HeldOut, grid: np.ndarray) -> np.ndarray:
    """Return per-row DR utilities (L, n) of a policy given as logits (L, n, E)."""
    probabilities = _restrict(logits, targets.allowed)
    utility = targets.quality[None] - grid[:, None, None] * targets.cost[None]
    return np.einsum("lne,lne->ln", probabilities, utility)


@dataclass
class Comparison:
    """Bootstrap summary of every policy's value and of each candidate's difference."""

    grid: np.ndarray
    values: dict[str, dict[str, list[float]]]
    differences: dict[str, dict[str, object]]


def traffic_weights(lam: np.ndarray | None, grid: np.ndarray) -> np.ndarray:
    """Return the share of requests at each grid λ, (L,), summing to 1.

    Each request's λ is split between its two neighbouring grid points with
    the router's linear interpolation weights; λ beyond the grid counts for
    the nearest end. Without any logged λ every grid point weighs the same.
    """
    weights = np.zeros(grid.size)
    values = np.asarray(lam if lam is not None else [], dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return np.full(grid.size, 1.0 / grid.size)
    clipped = np.clip(values, grid[0], grid[-1])
    right = np.clip(np.searchsorted(grid, clipped, side="right"), 1, grid.size - 1)
    left = right - 1
    span = grid[right] - grid[left]
    alpha = np.where(span > 0, (grid[right] - clipped) / np.where(span > 0, span, 1.0), 1.0)
    np.add.at(weights, left, alpha)
    np.add.at(weights, right, 1.0 - alpha)
    return weights / weights.sum()


def compare(
    rows: dict[str, np.ndarray],
    baseline: str,
    grid: np.ndarray,
    n_boot: int,
    random_state: int,
    weights: np.ndarray | None = None,
) -> Comparison:
    """Bootstrap the DR values of all policies with shared resamples of the rows.

    ``rows`` maps a policy name to its per-row utilities (L, n). Resampling the
    same rows for every policy makes the differences paired. ``weights`` (L,)
    is the share of traffic at each grid λ (:func:`traffic_weights`); None
    weighs every grid point the same.
    """
    if weights is None:
        weights = np.full(grid.size, 1.0 / grid.size)
    names = list(rows)
    stacked = np.stack([rows[name] for name in names])  # (P, L, n)
    n = stacked.shape[-1]
    flat = stacked.reshape(-1, n)
    rng = np.random.default_rng(random_state)
    draws = np.empty((flat.shape[0], n_boot))
    chunk = max(1, min(n_boot, 2_000_000 // max(n, 1)))
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        indices = rng.integers(0, n, size=(size, n))
        counts = np.stack([np.bincount(row, minlength=n) for row in indices]).astype(np.float64)
        draws[:, start : start + size] = flat @ counts.T / n
    draws = draws.reshape(stacked.shape[0], stacked.shape[1], n_boot)
    means = stacked.mean(axis=-1)

    tail = (1.0 - CONFIDENCE) / 2.0
    values = {}
    for p, name in enumerate(names):
        low, high = np.quantile(draws[p], [tail, 1.0 - tail], axis=-1)
        values[name] = {
            "value": means[p].tolist(),
            "ci_low": low.tolist(),
            "ci_high": high.tolist(),
        }

    candidates = [name for name in names if name != baseline]
    base = names.index(baseline)
    adjusted = CONFIDENCE if len(candidates) <= 1 else 1.0 - (1.0 - CONFIDENCE) / len(candidates)
    differences = {}
    for name in candidates:
        p = names.index(name)
        per_lambda = draws[p] - draws[base]
        low, high = np.quantile(per_lambda, [tail, 1.0 - tail], axis=-1)
        grid_mean = weights @ per_lambda
        adjusted_tail = (1.0 - adjusted) / 2.0
        mean_low, mean_high = np.quantile(grid_mean, [adjusted_tail, 1.0 - adjusted_tail])
        difference = means[p] - means[base]
        worse = [
            float(lam)
            for lam, h, w in zip(grid, high, weights, strict=True)
            if h < 0 and w > 0
        ]
        mean_difference = float(weights @ difference)
        differences[name] = {
            "difference": difference.tolist(),
            "ci_low": low.tolist(),
            "ci_high": high.tolist(),
            "mean_difference": mean_difference,
            "mean_ci_low": float(mean_low),
            "mean_ci_high": float(mean_high),
            "mean_ci_level": adjusted,
            "lambda_weights": weights.tolist(),
            "significantly_worse_at": worse,
            "passes": bool(mean_difference > 0 and mean_low > 0 and not worse),
        }
    return Comparison(grid, values, differences)


def select(comparison: Comparison, force: bool) -> str | None:
    """Return the candidate to install: the best passing one, or the best one with ``force``."""
    ranked = sorted(
        comparison.differences.items(), key=lambda item: -item[1]["mean_difference"]
    )
    for name, result in ranked:
        if result["passes"] or force:
            return name
    return None


def plot_curves(
    path,
    grid: np.ndarray,
    logits_by_policy: dict[str, np.ndarray],
    targets: HeldOut,
) -> bool:
    """Write a PNG of each policy's estimated (cost, quality) across the λ grid.

    Returns False when matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False

    figure, axes = plt.subplots(figsize=(6.5, 4.5))
    for name, logits in logits_by_policy.items():
        probabilities = _restrict(logits, targets.allowed)
        quality = np.einsum("lne,ne->l", probabilities, targets.quality) / targets.quality.shape[0]
        cost = np.einsum("lne,ne->l", probabilities, targets.cost) / targets.cost.shape[0]
        axes.plot(cost, quality, marker="o", label=name)
    axes.set_xscale("symlog", linthresh=1e-6)
    axes.set_xlabel("estimated mean cost per request (USD)")
    axes.set_ylabel("estimated mean quality")
    axes.set_title("DR estimates on held-out logs, one point per grid λ")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
