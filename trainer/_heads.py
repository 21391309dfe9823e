"""Per-model prediction heads that the client reads from ``router.onnx``.

The policy decides; these heads explain and bound the decision. The client
shows ``quality`` to the user and, under a budget, uses it to keep the
expected quality from falling as the budget grows. It multiplies
``output_tokens`` by the output price to check a budget. Both are fitted on every observed (prompt, model) pair:

- quality: L2-penalised logistic regression per model (Newton steps), so
  predictions stay inside (0, 1) and rank models the way the data do;
- output tokens: ridge regression of ``log1p(tokens)`` per model, mapped back
  with ``exp`` and Duan's smearing factor, minus one, so predictions stay
  positive and a model that writes ten times more is predicted ten times more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NEWTON_STEPS = 30


@dataclass(frozen=True)
class Heads:
    """Coefficients of the quality and output-token heads, one column per model."""

    quality_coef: np.ndarray  # (d + 1, K); the last row is the intercept
    tokens_coef: np.ndarray  # (d + 1, K); predicts log1p(tokens)
    tokens_smearing: np.ndarray  # (K,) mean of exp(residual) on the fitted rows
    tokens_fitted: bool  # False when fit received no output token counts

    def predict(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Return predicted quality and output tokens, each (n, K)."""
        Z = _with_intercept(X)
        quality = 1.0 / (1.0 + np.exp(-(Z @ self.quality_coef)))
        # E[tokens + 1] = exp(Z b) * E[exp(residual)] (Duan's smearing).
        tokens = np.exp(Z @ self.tokens_coef) * self.tokens_smearing - 1.0
        return {"quality": quality, "output_tokens": np.maximum(tokens, 0.0)}


def fit_heads(
    X: np.ndarray,
    quality: np.ndarray,
    output_tokens: np.ndarray | None,
    alpha: float = 10.0,
) -> Heads:
    """Fit both heads on an (n, K) table where NaN marks an unobserved pair.

    Logged data has one observed entry per row; full feedback has all of
    them. A model with no observed token count gets a tokens head of zero
    (prediction 0), which the export reports.
    """
    X = np.asarray(X, dtype=np.float64)
    Z = _with_intercept(X)
    n_models = quality.shape[1]
    quality_coef = np.zeros((Z.shape[1], n_models))
    tokens_coef = np.zeros((Z.shape[1], n_models))
    smearing = np.ones(n_models)

    for k in range(n_models):
        seen = ~np.isnan(quality[:, k])
        if seen.any():
            quality_coef[:, k] = _logistic(Z[seen], quality[seen, k], alpha)
        if output_tokens is None:
            continue
        counted = ~np.isnan(output_tokens[:, k]) & (output_tokens[:, k] >= 0)
        if counted.any():
            target = np.log1p(output_tokens[counted, k])
            coef = _ridge(Z[counted], target, alpha)
            residual = target - Z[counted] @ coef
            tokens_coef[:, k] = coef
            smearing[k] = float(np.mean(np.exp(residual)))
    return Heads(quality_coef, tokens_coef, smearing, output_tokens is not None)


def _with_intercept(X: np.ndarray) -> np.ndarray:
    return np.hstack([np.asarray(X, dtype=np.float64), np.ones((X.shape[0], 1))])


def _penalty(size: int, alpha: float) -> np.ndarray:
    # The intercept (last coefficient) is not penalised.
    diagonal = np.full(size, alpha)
    diagonal[-1] = 1e-8
    return np.diag(diagonal)


def _logistic(Z: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """Fit logistic regression to targets in [0, 1] (soft labels allowed)."""
    penalty = _penalty(Z.shape[1], alpha)
    coef = np.zeros(Z.shape[1])
    mean = float(np.clip(y.mean(), 1e-3, 1 - 1e-3))
    coef[-1] = np.log(mean / (1 - mean))
    for _ in range(NEWTON_STEPS):
        p = 1.0 / (1.0 + np.exp(-(Z @ coef)))
        gradient = Z.T @ (p - y) + penalty @ coef
        hessian = (Z * (p * (1 - p))[:, None]).T @ Z + penalty
        step = np.linalg.solve(hessian, gradient)
        coef -= step
        if np.abs(step).max() < 1e-8:
            break
    return coef


def _ridge(Z: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    penalty = _penalty(Z.shape[1], alpha)
    return np.linalg.solve(Z.T @ Z + penalty, Z.T @ y)
