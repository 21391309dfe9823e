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


COST_MODELS = ("linear", "log")


@dataclass(frozen=True)
class OutcomeModel:
    """Linear per-model predictors of quality, cost (USD) and output tokens.

    Coefficient arrays have shape (n_features + 1, K), row 0 being the intercept,
    and act on standardised features. ``tokens_coef`` is None unless output token
    counts were given to fit. With ``cost_model="log"``, ``cost_coef`` predicts
    ``log(cost)`` and the cost in USD is ``exp(Z @ cost_coef) * cost_smearing``,
    where ``cost_smearing`` (K,) is each model's smearing factor.
    """

    standardizer: Standardizer
    quality_coef: np.ndarray
    cost_coef: np.ndarray
    tokens_coef: np.ndarray | None
    cost_model: str = "linear"
    cost_smearing: np.ndarray | None = None

    def predict(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Return quality in [0, 1], cost >= 0 and output tokens >= 0, each (n, K)."""
        Z = add_intercept(self.standardizer.transform(X))
        result = {
            "quality": np.clip(Z @ self.quality_coef, 0.0, 1.0),
            "cost": cost_from_prediction(
                Z @ self.cost_coef, self.cost_model, self.cost_smearing
            ),
        }
        if self.tokens_coef is not None:
            result["output_tokens"] = np.maximum(Z @ self.tokens_coef, 0.0)
        return result


def check_cost_model(cost_model):
    """Raise ValueError unless ``cost_model`` is one of ``COST_MODELS``."""
    if cost_model not in COST_MODELS:
        raise ValueError(
            f"cost_model must be one of {COST_MODELS}, got {cost_model!r}."
        )


def cost_regression_target(cost, cost_model):
    """Return what the cost model regresses: cost in USD, or ``log(cost)``.

    Zero costs are raised to 1e-3 times the smallest positive cost before the
    logarithm, so that a free call does not become an outlier at minus infinity.
    """
    if cost_model == "linear":
        return cost
    positive = cost[cost > 0]
    floor = 1e-3 * positive.min() if positive.size else 1e-12
    return np.log(np.maximum(cost, floor))


def smearing_factors(chosen, cost, log_prediction, n_models):
    """Return each model's mean ratio of observed cost to ``exp(log prediction)``.

    This is Duan's smearing estimate ("Smearing estimate: a nonparametric
    retransformation method", JASA 1983) computed per model: ``exp`` of the
    predicted mean of ``log(cost)`` underestimates the mean cost, and the
    factor corrects that without assuming normal residuals. A model without
    rows gets factor 1.
    """
    ratio = cost / np.exp(log_prediction)
    totals = np.bincount(chosen, weights=ratio, minlength=n_models)
    counts = np.bincount(chosen, minlength=n_models)
    return np.where(counts > 0, totals / np.maximum(counts, 1), 1.0)


def cost_from_prediction(prediction, cost_model, smearing=None):
    """Return cost in USD (n, K) from the cost model's linear prediction."""
    if cost_model == "linear":
        return np.maximum(prediction, 0.0)
    return np.exp(prediction) * smearing


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


def _outcome_model(standardizer, Z, chosen, cost, coef, cost_model):
    """Return the ``OutcomeModel`` of coefficients (p, K, T) fitted on rows ``Z``."""
    quality_coef, cost_coef, tokens_coef = _coefficients(coef, coef.shape[2])
    smearing = None
    if cost_model == "log":
        log_prediction = predict_outcomes(Z, coef[:, :, 1:2])[:, :, 0]
        rows = np.arange(Z.shape[0])
        smearing = smearing_factors(
            chosen, cost, log_prediction[rows, chosen], coef.shape[1]
        )
    return OutcomeModel(
        standardizer, quality_coef, cost_coef, tokens_coef, cost_model, smearing
    )


def fit_outcome_model(
    X,
    chosen,
    quality,
    cost,
    n_models,
    output_tokens=None,
    outcome_alpha=1.0,
    shrinkage=100.0,
    cost_model="linear",
):
    """Fit the two-stage ridge outcome models on all logged rows (no cross-fitting).

    Inputs must already be validated (see ``check_logged``).
    """
    check_cost_model(cost_model)
    standardizer = Standardizer.fit(X)
    Z = add_intercept(standardizer.transform(X))
    columns = [quality, cost_regression_target(cost, cost_model)]
    if output_tokens is not None:
        columns.append(output_tokens)
    targets = np.column_stack(columns)
    folds = np.zeros(X.shape[0], dtype=np.int64)
    gram, moment, counts = group_moments(Z, chosen, targets, folds, 1, n_models)
    coef = solve_outcome_coefficients(
        gram[0], moment[0], counts[0], outcome_alpha, shrinkage
    )
    return _outcome_model(standardizer, Z, chosen, cost, coef, cost_model)


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
    cost_model="linear",
    weighting="clip",
    shrink=25.0,
    groups=None,
):
    """Cross-fit the nuisance models on logs and return ``PseudoOutcomes``.

    ``method`` is ``"dr"`` (doubly robust) or ``"ipw"`` (outcome model left out).
    Without ``propensity`` a multinomial logistic model of ``chosen`` given X
    estimates it, cross-fitted over the same folds. The returned outcome model is
    refitted on all rows.

    ``cost_model="log"`` regresses ``log(cost)`` and maps predictions back to USD
    with per-model smearing factors, so that models whose prices differ by
    orders of magnitude do not share one slope in USD. ``"linear"`` regresses
    cost in USD. ``weighting`` and ``shrink`` set the weights of the correction
    terms (see :func:`trainer.dr_pseudo_outcomes`). ``groups`` (one id per row,
    e.g. a prompt id) keeps all rows of a group in one cross-fitting fold.

    The defaults give the unbiased clipped DR targets that off-policy evaluation
    needs. ``RouterTrainer`` trains on ``weighting="shrink"`` and
    ``cost_model="log"`` by default, which are biased but lower regret.
    """
    if method not in ("dr", "ipw"):
        raise ValueError(f"method must be 'dr' or 'ipw', got {method!r}.")
    check_cost_model(cost_model)
    X, chosen, quality, cost, propensity, output_tokens = check_logged(
        X, chosen, quality, cost, propensity, output_tokens, n_models
    )
    rng = np.random.default_rng(random_state)
    standardizer = Standardizer.fit(X)
    Z = add_intercept(standardizer.transform(X))
    folds = make_folds(X.shape[0], n_folds, rng, groups)
    columns = [quality, cost_regression_target(cost, cost_model)]
    if output_tokens is not None:
        columns.append(output_tokens)
    targets = np.column_stack(columns)

    fold_coefs, full_coef = cross_fit_outcomes(
        Z, chosen, targets, n_models, folds, n_folds, outcome_alpha, shrinkage
    )
    quality_pred = np.empty((X.shape[0], n_models))
    cost_pred = np.empty((X.shape[0], n_models))
    for fold, coef in enumerate(fold_coefs):
        rows = folds == fold
        # The smearing factors of a fold come from the rows its coefficients
        # were fitted on, so a held-out row's cost never enters its own target.
        fold_model = _outcome_model(
            standardizer, Z[~rows], chosen[~rows], cost[~rows], coef, cost_model
        )
        predictions = predict_outcomes(Z[rows], coef)
        quality_pred[rows] = np.clip(predictions[:, :, 0], 0.0, 1.0)
        cost_pred[rows] = cost_from_prediction(
            predictions[:, :, 1], cost_model, fold_model.cost_smearing
        )

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
            chosen,
            quality,
            cost,
            propensity,
            quality_pred,
            cost_pred,
            p_min,
            weighting,
            shrink,
        )
    else:
        A, C = ipw_pseudo_outcomes(
            chosen, quality, cost, propensity, n_models, p_min, weighting, shrink
        )

    model = _outcome_model(standardizer, Z, chosen, cost, full_coef, cost_model)
    return PseudoOutcomes(A, C, None, propensity, model)


def full_feedback_targets(
    X,
    quality_matrix,
    cost_matrix,
    n_models,
    output_tokens_matrix=None,
    outcome_alpha=1.0,
    shrinkage=100.0,
    cost_model="linear",
):
    """Return kept row indices, their features and ``PseudoOutcomes`` from tables.

    An entry exists when quality and cost (and output tokens, if given) are all
    present. Missing entries stay masked and are never imputed. Rows without any
    entry are dropped with a warning. The outcome model is fitted on every entry
    that exists, with cost in USD or in log space (``cost_model``). The targets
    are the observed outcomes either way.
    """
    check_cost_model(cost_model)
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
    observed = [table[rows, models] for table in tables]
    regressed = list(observed)
    regressed[1] = cost_regression_target(observed[1], cost_model)
    targets = np.column_stack(regressed)
    gram, moment, counts = group_moments(
        Z[rows], models, targets, np.zeros(rows.size, dtype=np.int64), 1, n_models
    )
    coef = solve_outcome_coefficients(
        gram[0], moment[0], counts[0], outcome_alpha, shrinkage
    )
    model = _outcome_model(standardizer, Z[rows], models, observed[1], coef, cost_model)
    A = np.where(mask, tables[0], 0.0)
    C = np.where(mask, tables[1], 0.0)
    return kept, X, PseudoOutcomes(A, C, mask, None, model)
