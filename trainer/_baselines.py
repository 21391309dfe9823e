"""Baselines for the benchmark: the direct method and constant-model policies."""

from __future__ import annotations

import numpy as np

from ._targets import check_cost_model, fit_outcome_model, full_feedback_targets
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

    ``cost_model="log"`` (the default) regresses ``log(cost)`` and converts back
    to USD with per-model smearing factors. ``"linear"`` regresses USD with one
    slope shared by all models, which can predict a near-zero cost for an
    expensive model and so route to it at large λ.
    """

    def __init__(self, models, *, outcome_alpha=1.0, shrinkage=100.0, cost_model="log"):
        self.models = models
        self.outcome_alpha = outcome_alpha
        self.shrinkage = shrinkage
        self.cost_model = cost_model

    def fit(self, X, chosen, quality, cost, propensity=None, output_tokens=None):
        """Fit the outcome models on logs and return self; ``propensity`` is unused."""
        models = check_models(self.models)
        check_cost_model(self.cost_model)
        X, chosen, quality, cost, _, output_tokens = check_logged(
            X, chosen, quality, cost, None, output_tokens, len(models)
        )
        self.outcome_model_ = fit_outcome_model(
            X,
            chosen,
            quality,
            cost,
            len(models),
            output_tokens,
            self.outcome_alpha,
            self.shrinkage,
            self.cost_model,
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
            self.cost_model,
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
