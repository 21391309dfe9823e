"""Training targets from logs or full-feedback tables, with their outcome models."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ._dr import dr_pseudo_outcomes, ipw_pseudo_outcomes, utility
from ._nuisance import (
    Standardizer,
    add_intercept,
    cross_fit_outcomes,
    cross_fit_propensity,
    group_moments,
    make_folds,
    predict_outcomes,
    solve_outcome_coefficients,
)
from ._training import single_blas_thread
from ._validation import check_full_feedback, check_logged

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutcomeModel:
    """Linear per-model predictors of quality, cost (USD) and output tokens.

    Coefficient arrays have shape (n_features + 1, K), row 0 being the intercept,
    and act on standardised features. ``tokens_coef`` is None unless output token
    counts were given to fit.
    """

    standardizer: Standardizer
    quality_coef: np.ndarray
    cost_coef: np.ndarray
    tokens_coef: np.ndarray | None

    def predict(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Return quality in [0, 1], cost >= 0 and output tokens >= 0, each (n, K)."""
        Z = add_intercept(self.standardizer.transform(X))
        result = {
            "quality": np.clip(Z @ self.quality_coef, 0.0, 1.0),
            "cost": np.maximum(Z @ self.cost_coef, 0.0),
        }
        if self.tokens_coef is not None:
            result["output_tokens"] = np.maximum(Z @ self.tokens_coef, 0.0)
        return result


@dataclass(frozen=True)
class PseudoOutcomes:
    """Per-row, per-model quality targets ``A`` and cost targets ``C`` (USD).

    ``mask`` (n, K) is True where an entry exists and is None for logged data,
    where every entry is an estimate. ``propensity`` is the probability of the
    logged model that was used (given or cross-fitted), before clipping.
    """

    quality: np.ndarray
    cost: np.ndarray
    mask: np.ndarray | None
    propensity: np.ndarray | None
    outcome_model: OutcomeModel

    def utility(self, lam):
        """Return ``Y = A - λ C`` as (n, K) for scalar λ or (L, n, K)."""
        return utility(self.quality, self.cost, lam)


def _coefficients(coef, n_targets):
    parts = [
        np.ascontiguousarray(coef[:, :, j], dtype=np.float32) for j in range(n_targets)
    ]
    return parts[0], parts[1], parts[2] if n_targets == 3 else None


def cross_fit_pseudo_outcomes(
    X,
    chosen,
    quality,
    cost,
    n_models,
    *,
    propensity=None,
    output_tokens=None,
    method="dr",
    p_min=0.02,
    n_folds=3,
    outcome_alpha=1.0,
    shrinkage=100.0,
    propensity_l2=1e-3,
    random_state=None,
):
    """Cross-fit the nuisance models on logs and return ``PseudoOutcomes``.

    ``method`` is ``"dr"`` (doubly robust) or ``"ipw"`` (outcome model left out).
    Without ``propensity`` a multinomial logistic model of ``chosen`` given X
    estimates it, cross-fitted over the same folds. The returned outcome model is
    refitted on all rows.
    """
    if method not in ("dr", "ipw"):
        raise ValueError(f"method must be 'dr' or 'ipw', got {method!r}.")
    X, chosen, quality, cost, propensity, output_tokens = check_logged(
        X, chosen, quality, cost, propensity, output_tokens, n_models
    )
    rng = np.random.default_rng(random_state)
    standardizer = Standardizer.fit(X)
    Z = add_intercept(standardizer.transform(X))
    folds = make_folds(X.shape[0], n_folds, rng)
    columns = [quality, cost] + ([output_tokens] if output_tokens is not None else [])
    targets = np.column_stack(columns)

    fold_coefs, full_coef = cross_fit_outcomes(
        Z, chosen, targets, n_models, folds, n_folds, outcome_alpha, shrinkage
    )
    predictions = np.empty((X.shape[0], n_models, targets.shape[1]))
    for fold, coef in enumerate(fold_coefs):
        rows = folds == fold
        predictions[rows] = predict_outcomes(Z[rows], coef)
    quality_pred = np.clip(predictions[:, :, 0], 0.0, 1.0)
    cost_pred = np.maximum(predictions[:, :, 1], 0.0)

    if propensity is None:
        # Products with K columns are memory-bound, so extra BLAS threads only
        # contend for the cores.
        with single_blas_thread():
            propensity = cross_fit_propensity(
                Z, chosen, n_models, folds, n_folds, propensity_l2
            )
        logger.info(
            "estimated propensities: min %.4f, share below p_min %.3f",
            propensity.min(),
            np.mean(propensity < p_min),
        )
    if method == "dr":
        A, C = dr_pseudo_outcomes(
            chosen, quality, cost, propensity, quality_pred, cost_pred, p_min
        )
    else:
        A, C = ipw_pseudo_outcomes(chosen, quality, cost, propensity, n_models, p_min)

    model = OutcomeModel(standardizer, *_coefficients(full_coef, targets.shape[1]))
    return PseudoOutcomes(A, C, None, propensity, model)


def full_feedback_targets(
    X,
    quality_matrix,
    cost_matrix,
    n_models,
    output_tokens_matrix=None,
    outcome_alpha=1.0,
    shrinkage=100.0,
):
    """Return kept row indices, their features and ``PseudoOutcomes`` from tables.

    An entry exists when quality and cost (and output tokens, if given) are all
    present. Missing entries stay masked and are never imputed. Rows without any
    entry are dropped with a warning. The outcome model is fitted on every entry
    that exists.
    """
    X, quality, cost, tokens = check_full_feedback(
        X, quality_matrix, cost_matrix, output_tokens_matrix, n_models
    )
    tables = [quality, cost] + ([tokens] if tokens is not None else [])
    mask = np.logical_and.reduce([~np.isnan(table) for table in tables])
    kept = np.flatnonzero(mask.any(axis=1))
    if kept.size < X.shape[0]:
        logger.warning(
            "dropped %d of %d rows that have no model with all outcomes present",
            X.shape[0] - kept.size,
            X.shape[0],
        )
    if kept.size == 0:
        raise ValueError(
            "quality_matrix and cost_matrix have no entry where both are present; "
            "mark only missing entries with NaN."
        )
    X, mask = X[kept], mask[kept]
    tables = [table[kept] for table in tables]

    standardizer = Standardizer.fit(X)
    Z = add_intercept(standardizer.transform(X))
    rows, models = np.nonzero(mask)
    targets = np.column_stack([table[rows, models] for table in tables])
    gram, moment, counts = group_moments(
        Z[rows], models, targets, np.zeros(rows.size, dtype=np.int64), 1, n_models
    )
    coef = solve_outcome_coefficients(
        gram[0], moment[0], counts[0], outcome_alpha, shrinkage
    )
    model = OutcomeModel(standardizer, *_coefficients(coef, len(tables)))
    A = np.where(mask, tables[0], 0.0)
    C = np.where(mask, tables[1], 0.0)
    return kept, X, PseudoOutcomes(A, C, mask, None, model)
