"""Variance-reduced DR targets tried by the benchmark, built on the trainer's nuisances.

``cross_fit_targets`` reproduces :func:`trainer.cross_fit_pseudo_outcomes` for
logged propensities and adds four options:

- ``groups``: cross-fitting folds by prompt, so that a prompt logged several
  times never has its own outcome in the model that predicts it;
- ``cost_correction=False``: cost targets from the outcome model alone. Cost is
  nearly a function of the model and the prompt length, so the DR correction
  of cost adds ``λ (c - m_c) / p`` of noise for little bias removed;
- ``weighting="self_normalized"``: each model's weights ``1 / p`` divided by
  their mean over all rows, so that they average 1 for every model;
- ``weighting="shrunk"``: the optimistic shrinkage ``w' = s w / (w^2 + s)``
  of Su et al. (2020, "Doubly robust off-policy evaluation with shrinkage"),
  which caps a weight's effect near ``sqrt(s)``;
- ``log_cost=True``: the cost model regresses ``log(cost)`` and predicts
  ``exp(prediction)`` times each model's mean ratio of observed to predicted
  cost (Duan's smearing estimate). The trainer's linear cost model shares one
  slope across models whose prices differ by 50x, so it can predict a cost
  near 0 for an expensive model, which a router then calls at large λ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._nuisance import (
    Standardizer,
    add_intercept,
    cross_fit_outcomes,
    group_moments,
    predict_outcomes,
    solve_outcome_coefficients,
)
from ._targets import OutcomeModel, PseudoOutcomes

WEIGHTINGS = ("clipped", "self_normalized", "shrunk")


@dataclass(frozen=True)
class TargetOptions:
    """Options of :func:`cross_fit_targets`; the defaults match the trainer's DR."""

    p_min: float = 0.02
    n_folds: int = 3
    outcome_alpha: float = 1.0
    shrinkage: float = 100.0
    weighting: str = "clipped"
    weight_shrinkage: float = 25.0
    cost_correction: bool = True
    group_folds: bool = False
    log_cost: bool = False


def _cost_target(cost, log_cost):
    return np.log(np.maximum(cost, 1e-9)) if log_cost else cost


def _smearing(chosen, cost, log_prediction, n_models):
    """Return each model's mean of observed cost over ``exp(log prediction)``."""
    ratio = cost / np.exp(log_prediction)
    factors = np.ones(n_models)
    for t in range(n_models):
        rows = chosen == t
        if rows.any():
            factors[t] = ratio[rows].mean()
    return factors


def _fold_ids(n_rows, groups, n_folds, rng):
    if groups is None:
        return rng.permutation(np.arange(n_rows) % n_folds)
    unique, inverse = np.unique(groups, return_inverse=True)
    group_fold = rng.permutation(np.arange(unique.size) % n_folds)
    return group_fold[inverse]


def _weights(chosen, propensity, n_models, options):
    weight = 1.0 / np.maximum(propensity, options.p_min)
    if options.weighting == "self_normalized":
        for t in range(n_models):
            rows = chosen == t
            total = weight[rows].sum()
            if total > 0:
                weight[rows] *= rows.size / total
    elif options.weighting == "shrunk":
        s = options.weight_shrinkage
        weight = s * weight / (weight**2 + s)
    elif options.weighting != "clipped":
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {options.weighting!r}.")
    return weight


def cross_fit_targets(X, chosen, quality, cost, propensity, n_models, options, rng, groups=None):
    """Return cross-fitted DR ``PseudoOutcomes`` with the variance options applied.

    ``groups`` (one id per row, e.g. the prompt index) is used for the folds only
    when ``options.group_folds`` is set.
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    standardizer = Standardizer.fit(X)
    Z = add_intercept(standardizer.transform(X))
    folds = _fold_ids(X.shape[0], groups if options.group_folds else None, options.n_folds, rng)
    targets = np.column_stack([quality, _cost_target(cost, options.log_cost)])
    fold_coefs, full_coef = cross_fit_outcomes(
        Z, chosen, targets, n_models, folds, options.n_folds,
        options.outcome_alpha, options.shrinkage,
    )
    predictions = np.empty((X.shape[0], n_models, 2))
    for fold, coef in enumerate(fold_coefs):
        rows = folds == fold
        predictions[rows] = predict_outcomes(Z[rows], coef)
    rows = np.arange(X.shape[0])
    quality_pred = np.clip(predictions[:, :, 0], 0.0, 1.0)
    if options.log_cost:
        smearing = _smearing(chosen, cost, predictions[rows, chosen, 1], n_models)
        cost_pred = np.exp(predictions[:, :, 1]) * smearing
    else:
        cost_pred = np.maximum(predictions[:, :, 1], 0.0)

    weight = _weights(chosen, np.asarray(propensity, dtype=np.float64), n_models, options)
    A = quality_pred.copy()
    A[rows, chosen] += (quality - quality_pred[rows, chosen]) * weight
    C = cost_pred.copy()
    if options.cost_correction:
        C[rows, chosen] += (cost - cost_pred[rows, chosen]) * weight

    # NOTE: with log_cost the returned OutcomeModel's cost coefficients predict
    # log(cost), so its predict() does not return USD. Use LogCostDirectMethod.
    model = OutcomeModel(
        standardizer,
        np.ascontiguousarray(full_coef[:, :, 0], dtype=np.float32),
        np.ascontiguousarray(full_coef[:, :, 1], dtype=np.float32),
        None,
    )
    return PseudoOutcomes(A, C, None, np.asarray(propensity, dtype=np.float64), model)


class LogCostDirectMethod:
    """Direct method with the trainer's quality model and a log-space cost model."""

    def __init__(self, n_models, outcome_alpha=1.0, shrinkage=100.0):
        self.n_models = n_models
        self.outcome_alpha = outcome_alpha
        self.shrinkage = shrinkage

    def fit(self, X, chosen, quality, cost):
        """Fit on logs (one served model per row) and return self."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        self.standardizer_ = Standardizer.fit(X)
        Z = add_intercept(self.standardizer_.transform(X))
        targets = np.column_stack([quality, _cost_target(cost, True)])
        folds = np.zeros(X.shape[0], dtype=np.int64)
        gram, moment, counts = group_moments(Z, chosen, targets, folds, 1, self.n_models)
        self.coef_ = solve_outcome_coefficients(
            gram[0], moment[0], counts[0], self.outcome_alpha, self.shrinkage
        )
        log_prediction = predict_outcomes(Z, self.coef_)[np.arange(X.shape[0]), chosen, 1]
        self.smearing_ = _smearing(chosen, cost, log_prediction, self.n_models)
        return self

    def predict(self, X, lam):
        """Return the model with the highest predicted ``quality - λ cost`` per row."""
        Z = add_intercept(self.standardizer_.transform(np.asarray(X, dtype=np.float32)))
        predictions = predict_outcomes(Z, self.coef_)
        quality = np.clip(predictions[:, :, 0], 0.0, 1.0)
        cost = np.exp(predictions[:, :, 1]) * self.smearing_
        return (quality - lam * cost).argmax(axis=1)
