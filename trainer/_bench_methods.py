"""Routing methods compared by the benchmark, each returning a policy on test prompts.

Every method returns routing probabilities of shape (L, n_test, K), one slice
per λ of the benchmark grid. Deterministic routers return one-hot rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._baselines import DirectMethodRouter
from ._dr import best_constant_model
from ._estimator import RouterTrainer
from ._targets import cross_fit_pseudo_outcomes


@dataclass
class Problem:
    """One benchmark cell: logs on the training prompts and the test prompts."""

    models: list[str]
    grid: np.ndarray  # λ values, quality points per USD
    train_features: np.ndarray  # (n_train_prompts, d)
    train_quality: np.ndarray  # (n_train_prompts, K), NaN where missing
    train_cost: np.ndarray
    test_features: np.ndarray  # (n_test, d)
    log_prompt: np.ndarray  # (n_logs,) index into the training prompts
    log_chosen: np.ndarray
    log_quality: np.ndarray
    log_cost: np.ndarray
    log_propensity: np.ndarray
    seed: int
    network: dict  # RouterTrainer keyword arguments shared by all networks
    cache: dict = field(default_factory=dict)

    @property
    def log_features(self) -> np.ndarray:
        return self.train_features[self.log_prompt]


def one_hot(choices, n_models):
    """Turn model indices (L, n) into one-hot probabilities (L, n, K)."""
    probs = np.zeros(choices.shape + (n_models,))
    np.put_along_axis(probs, choices[..., None], 1.0, axis=-1)
    return probs


def _predict_grid(router, X, grid):
    return np.stack([router.predict(X, lam) for lam in grid])


def _trainer(problem, **options):
    settings = dict(problem.network)
    settings.update(options)
    return RouterTrainer(
        problem.models, lambda_grid=problem.grid, random_state=problem.seed, **settings
    )


def dr_targets(problem):
    """Return (cached) unbiased DR targets of the logs: clipped weights, linear cost.

    Prompts logged several times keep all their rows in one cross-fitting fold.
    """
    if "dr_targets" not in problem.cache:
        problem.cache["dr_targets"] = cross_fit_pseudo_outcomes(
            problem.log_features,
            problem.log_chosen,
            problem.log_quality,
            problem.log_cost,
            len(problem.models),
            propensity=problem.log_propensity,
            p_min=problem.network.get("p_min", 0.02),
            n_folds=problem.network.get("n_folds", 3),
            random_state=problem.seed,
            groups=problem.log_prompt,
        )
    return problem.cache["dr_targets"]


def best_single_by_dr(problem):
    """Constant model with the best DR value on the logs, per λ."""
    targets = dr_targets(problem)
    best = best_constant_model(targets.quality, targets.cost, problem.grid)
    n_test = problem.test_features.shape[0]
    return one_hot(np.repeat(best[:, None], n_test, axis=1), len(problem.models))


def best_single_full(problem):
    """Constant model with the best mean utility on the full training table, per λ."""
    quality, cost = problem.train_quality, problem.train_cost
    means = np.stack([np.nanmean(quality - lam * cost, axis=0) for lam in problem.grid])
    best = means.argmax(axis=1)
    n_test = problem.test_features.shape[0]
    return one_hot(np.repeat(best[:, None], n_test, axis=1), len(problem.models))


def random_policy(problem):
    """Uniform choice among all models."""
    shape = (problem.grid.size, problem.test_features.shape[0], len(problem.models))
    return np.full(shape, 1.0 / len(problem.models))


def direct_method(problem, **options):
    """Per-model outcome regression on the logs, then argmax predicted utility."""
    router = DirectMethodRouter(problem.models, **options).fit(
        problem.log_features, problem.log_chosen, problem.log_quality, problem.log_cost
    )
    return one_hot(_predict_grid(router, problem.test_features, problem.grid), len(problem.models))


def network_on_logs(problem, **options):
    """Fit the trainer's network on the logs and return its one-hot test choices."""
    router = _trainer(problem, **options).fit(
        problem.log_features,
        problem.log_chosen,
        problem.log_quality,
        problem.log_cost,
        propensity=problem.log_propensity,
        groups=problem.log_prompt,
    )
    return one_hot(_predict_grid(router, problem.test_features, problem.grid), len(problem.models))


def _cosine_neighbours(train, test, k):
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    test = test / np.linalg.norm(test, axis=1, keepdims=True)
    k = min(k, train.shape[0])
    neighbours = []
    for start in range(0, test.shape[0], 512):
        similarity = test[start : start + 512] @ train.T
        neighbours.append(np.argpartition(-similarity, k - 1, axis=1)[:, :k])
    return np.concatenate(neighbours)


def knn_on_logs(problem, k=50):
    """Mean DR targets of the k nearest logged prompts (cosine on embeddings)."""
    targets = dr_targets(problem)
    neighbours = _cosine_neighbours(
        problem.log_features[:, :384], problem.test_features[:, :384], k
    )
    quality = targets.quality[neighbours].mean(axis=1)
    cost = targets.cost[neighbours].mean(axis=1)
    choices = np.stack([(quality - lam * cost).argmax(axis=1) for lam in problem.grid])
    return one_hot(choices, len(problem.models))


def knn_full_feedback(problem, k=50):
    """Mean observed outcomes of the k nearest training prompts, missing entries skipped."""
    neighbours = _cosine_neighbours(
        problem.train_features[:, :384], problem.test_features[:, :384], k
    )
    quality = np.nanmean(problem.train_quality[neighbours], axis=1)
    cost = np.nanmean(problem.train_cost[neighbours], axis=1)
    quality = np.nan_to_num(quality, nan=-np.inf)
    choices = np.stack([(quality - lam * cost).argmax(axis=1) for lam in problem.grid])
    return one_hot(choices, len(problem.models))


def full_feedback_network(problem):
    """The interval-conditioned softmax-regret network fitted on the full table."""
    router = _trainer(problem).fit_full(
        problem.train_features, problem.train_quality, problem.train_cost
    )
    return one_hot(_predict_grid(router, problem.test_features, problem.grid), len(problem.models))


def full_feedback_decoupled(problem):
    """Per-model outcome regression on the full table, then argmax predicted utility."""
    router = DirectMethodRouter(problem.models).fit_full(
        problem.train_features, problem.train_quality, problem.train_cost
    )
    return one_hot(_predict_grid(router, problem.test_features, problem.grid), len(problem.models))


# Unbiased IPW: shrinking its weights would pull every target towards 0.
IPW_OPTIONS = {"pseudo_outcomes": "ipw", "weighting": "clip", "cost_model": "linear"}

MAIN_METHODS = {
    "best_single": best_single_by_dr,
    "best_single_full": best_single_full,
    "random": random_policy,
    "direct_method": direct_method,
    "direct_method_linear_cost": lambda p: direct_method(p, cost_model="linear"),
    "ipw": lambda p: network_on_logs(p, **IPW_OPTIONS),
    "dr_classification": lambda p: network_on_logs(p, loss="classification"),
    "dr_softmax": network_on_logs,
    "dr_softmax_per_lambda": lambda p: network_on_logs(p, per_lambda=True),
    # Ablations of the trainer's default targets (shrunk weights, log cost model).
    "dr_softmax_clip": lambda p: network_on_logs(p, weighting="clip"),
    "dr_softmax_linear_cost": lambda p: network_on_logs(p, cost_model="linear"),
    "dr_softmax_clip_linear": lambda p: network_on_logs(
        p, weighting="clip", cost_model="linear"
    ),
    "knn": knn_on_logs,
    "knn_full_feedback": knn_full_feedback,
    "full_feedback": full_feedback_network,
    "full_feedback_decoupled": full_feedback_decoupled,
}

# Extra ablation for --validation: the optimiser defaults before batch 64 and
# patience 15.
VALIDATION_METHODS = {
    "dr_softmax_batch256_patience10": lambda p: network_on_logs(
        p, batch_size=256, patience=10
    ),
}
