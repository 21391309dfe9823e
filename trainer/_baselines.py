"""Baselines for the benchmark: the direct method and constant-model policies."""

from __future__ import annotations

import numpy as np

from ._nuisance import (
    Standardizer,
    add_intercept,
    group_moments,
    solve_outcome_coefficients,
)
from ._targets import OutcomeModel, full_feedback_targets
from ._validation import (
    check_features,
    check_is_fitted,
    check_lambda,
    check_logged,
    check_models,
)


class DirectMethodRouter:
    """Route to ``argmax_t m_a(x, t) - λ m_c(x, t)`` of fitted outcome models.

    This is the decoupled predict-then-optimise approach. On logs it regresses
    each model's outcomes on the rows that model served, so it is biased wherever
    the logging policy and a misspecified outcome model interact. It uses the
    same two-stage ridge as the DR targets, fitted on all rows.
    """

    def __init__(self, models, *, outcome_alpha=1.0, shrinkage=100.0):
        self.models = models
        self.outcome_alpha = outcome_alpha
        self.shrinkage = shrinkage

    def fit(self, X, chosen, quality, cost, propensity=None, output_tokens=None):
        """Fit the outcome models on logs and return self; ``propensity`` is unused."""
        models = check_models(self.models)
        X, chosen, quality, cost, _, output_tokens = check_logged(
            X, chosen, quality, cost, None, output_tokens, len(models)
        )
        standardizer = Standardizer.fit(X)
        Z = add_intercept(standardizer.transform(X))
        columns = [quality, cost] + (
            [output_tokens] if output_tokens is not None else []
        )
        targets = np.column_stack(columns)
        folds = np.zeros(X.shape[0], dtype=np.int64)
        gram, moment, counts = group_moments(Z, chosen, targets, folds, 1, len(models))
        coef = solve_outcome_coefficients(
            gram[0], moment[0], counts[0], self.outcome_alpha, self.shrinkage
        ).astype(np.float32)
        tokens = coef[:, :, 2] if targets.shape[1] == 3 else None
        self.outcome_model_ = OutcomeModel(
            standardizer, coef[:, :, 0].copy(), coef[:, :, 1].copy(), tokens
        )
        self.models_ = models
        self.n_features_in_ = X.shape[1]
        return self

    def fit_full(self, X, quality_matrix, cost_matrix, output_tokens_matrix=None):
        """Fit the outcome models on full-feedback tables and return self.

        NaN marks a missing entry, which is left out of the fit.
        """
        models = check_models(self.models)
        _, X_kept, targets = full_feedback_targets(
            X,
            quality_matrix,
            cost_matrix,
            len(models),
            output_tokens_matrix,
            self.outcome_alpha,
            self.shrinkage,
        )
        self.outcome_model_ = targets.outcome_model
        self.models_ = models
        self.n_features_in_ = X_kept.shape[1]
        return self

    def predict_utility(self, X, lam):
        """Return the predicted utility ``m_a - λ m_c`` of every model, (n, K)."""
        check_is_fitted(self, "outcome_model_", "predict_utility")
        X = check_features(X, n_features=self.n_features_in_)
        lam = check_lambda(lam, X.shape[0]).astype(np.float64)
        outcome = self.outcome_model_.predict(X)
        return outcome["quality"] - lam[:, None] * outcome["cost"]

    def predict(self, X, lam):
        """Return the index of the model with the highest predicted utility."""
        return self.predict_utility(X, lam).argmax(axis=1)

    def predict_proba(self, X, lam):
        """Return the deterministic policy as one-hot rows, (n, K)."""
        chosen = self.predict(X, lam)
        probs = np.zeros((chosen.size, len(self.models_)))
        probs[np.arange(chosen.size), chosen] = 1.0
        return probs


def constant_policy(n_samples, n_models, model_index):
    """Return the one-hot policy (n, K) that always calls ``model_index``."""
    probs = np.zeros((n_samples, n_models))
    probs[:, model_index] = 1.0
    return probs
