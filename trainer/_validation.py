"""Input checks shared by the trainer's estimators and functions.

Every check raises ``ValueError`` whose message names the argument, the rule it
broke and how to fix it. Arrays come back as contiguous numpy arrays of the
dtype the rest of the trainer expects.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_LAMBDA_GRID = (0.0, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 1e4)


class NotFittedError(ValueError, AttributeError):
    """An estimator was used before ``fit`` or ``fit_full`` was called."""


def check_is_fitted(estimator: object, attribute: str, method: str) -> None:
    """Raise NotFittedError naming the class unless ``attribute`` is set."""
    if getattr(estimator, attribute, None) is None:
        name = type(estimator).__name__
        raise NotFittedError(
            f"This {name} instance is not fitted yet: call 'fit' or 'fit_full' "
            f"before '{method}'."
        )


def check_models(models: Sequence[str]) -> list[str]:
    """Return the model names as a list after checking they are unique strings."""
    if isinstance(models, str) or not isinstance(models, Sequence):
        raise ValueError(
            f"models must be a list of model names, got {models!r}; "
            "pass e.g. models=['gpt-4o-mini', 'gpt-4o']."
        )
    names = list(models)
    if len(names) < 2:
        raise ValueError(
            f"models must name at least 2 models to route between, got {names!r}."
        )
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError(f"models must contain non-empty strings, got {name!r}.")
    if len(set(names)) != len(names):
        raise ValueError(f"models contains duplicate names: {names!r}.")
    return names


def check_lambda_grid(grid: Sequence[float] | None) -> np.ndarray:
    """Return the λ grid as float64 after checking it is finite, >= 0 and increasing."""
    if grid is None:
        grid = DEFAULT_LAMBDA_GRID
    values = np.asarray(grid, dtype=np.float64)
    if values.ndim != 1 or values.size < 2:
        raise ValueError(
            f"lambda_grid must be a 1-d sequence of at least 2 values, got {grid!r}."
        )
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(
            f"lambda_grid must contain finite values >= 0 (quality points per USD), "
            f"got {grid!r}."
        )
    if np.any(np.diff(values) <= 0):
        raise ValueError(f"lambda_grid must be strictly increasing, got {grid!r}.")
    return values


def check_features(X: object, name: str = "X", n_features: int | None = None):
    """Return ``X`` as a C-contiguous float32 matrix with finite entries."""
    array = np.asarray(X)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(
            f"{name} must be a non-empty 2-d array (n_samples, n_features), "
            f"got shape {array.shape}; reshape it or pass one embedding per row."
        )
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {array.dtype}.")
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.all(np.isfinite(array)):
        raise ValueError(
            f"{name} contains NaN or infinite values; drop or re-embed those rows."
        )
    if n_features is not None and array.shape[1] != n_features:
        raise ValueError(
            f"{name} has {array.shape[1]} features but the trainer was fitted with "
            f"{n_features}; use the same embedder and features as in fit."
        )
    return array


def check_vector(
    values: object,
    name: str,
    n_samples: int,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    fix: str = "",
) -> np.ndarray:
    """Return a finite float64 vector of length ``n_samples`` inside the bounds."""
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (n_samples,):
        raise ValueError(
            f"{name} must have shape ({n_samples},) to match X, got {array.shape}."
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values. {fix}".strip())
    _check_bounds(array, name, low, high, low_open, fix)
    return array


def check_matrix(
    values: object,
    name: str,
    shape: tuple[int, int],
    low: float | None = None,
    high: float | None = None,
    fix: str = "",
) -> np.ndarray:
    """Return a float64 matrix of ``shape``; NaN marks a missing entry and is kept."""
    array = np.asarray(values, dtype=np.float64)
    if array.shape != shape:
        raise ValueError(
            f"{name} must have shape {shape} (n_samples, n_models), got {array.shape}."
        )
    if np.any(np.isinf(array)):
        raise ValueError(
            f"{name} contains infinite values; use NaN to mark a missing entry."
        )
    observed = array[~np.isnan(array)]
    _check_bounds(observed, name, low, high, False, fix)
    return array


def _check_bounds(array, name, low, high, low_open, fix):
    if array.size == 0:
        return
    if low is not None:
        bad = array <= low if low_open else array < low
        if np.any(bad):
            relation = ">" if low_open else ">="
            raise ValueError(
                f"{name} must be {relation} {low}, got min {array.min()!r}. {fix}"
            )
    if high is not None and np.any(array > high):
        raise ValueError(f"{name} must be <= {high}, got max {array.max()!r}. {fix}")


def check_chosen(chosen: object, n_samples: int, n_models: int) -> np.ndarray:
    """Return the served-model indices as int64 after checking they are in range."""
    array = np.asarray(chosen)
    if array.shape != (n_samples,):
        raise ValueError(
            f"chosen must have shape ({n_samples},) to match X, got {array.shape}."
        )
    if array.size and not np.issubdtype(array.dtype, np.integer):
        as_float = np.asarray(array, dtype=np.float64)
        if not np.all(np.isfinite(as_float)) or np.any(as_float != np.round(as_float)):
            raise ValueError(
                "chosen must contain integer model indices; map model names to "
                "their position in models first."
            )
    array = array.astype(np.int64)
    if np.any(array < 0) or np.any(array >= n_models):
        raise ValueError(
            f"chosen must contain indices in [0, {n_models - 1}] (one per model in "
            f"models), got min {array.min()} and max {array.max()}."
        )
    return array


def check_lambda(lam: object, n_samples: int) -> np.ndarray:
    """Return λ broadcast to a float32 vector of length ``n_samples``."""
    values = np.asarray(lam, dtype=np.float64)
    if values.ndim == 0:
        values = np.full(n_samples, float(values))
    if values.shape != (n_samples,):
        raise ValueError(
            f"lam must be a float or an array of shape ({n_samples},), "
            f"got shape {values.shape}."
        )
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(
            "lam must be finite and >= 0 (quality points per USD); "
            f"got min {values.min()!r}."
        )
    return values.astype(np.float32)


def check_logged(X, chosen, quality, cost, propensity, output_tokens, n_models):
    """Validate one logged call per row and return the arrays in trainer dtypes."""
    X = check_features(X)
    n = X.shape[0]
    chosen = check_chosen(chosen, n, n_models)
    quality = check_vector(
        quality, "quality", n, 0.0, 1.0, fix="Rescale scores to [0, 1]."
    )
    cost = check_vector(cost, "cost", n, 0.0, fix="Pass the call's cost in USD.")
    if propensity is not None:
        propensity = check_vector(
            propensity,
            "propensity",
            n,
            0.0,
            1.0,
            low_open=True,
            fix="Pass the logging policy's probability of the served model, in "
            "(0, 1], or None to estimate it.",
        )
    if output_tokens is not None:
        output_tokens = check_vector(
            output_tokens, "output_tokens", n, 0.0, fix="Pass token counts >= 0."
        )
    return X, chosen, quality, cost, propensity, output_tokens


def check_full_feedback(X, quality_matrix, cost_matrix, output_tokens_matrix, n_models):
    """Validate full-feedback tables; NaN entries stay NaN and mean 'missing'."""
    X = check_features(X)
    shape = (X.shape[0], n_models)
    quality = check_matrix(
        quality_matrix, "quality_matrix", shape, 0.0, 1.0, "Rescale scores to [0, 1]."
    )
    cost = check_matrix(cost_matrix, "cost_matrix", shape, 0.0, None, "Use USD >= 0.")
    tokens = None
    if output_tokens_matrix is not None:
        tokens = check_matrix(
            output_tokens_matrix,
            "output_tokens_matrix",
            shape,
            0.0,
            None,
            "Pass token counts >= 0.",
        )
    return X, quality, cost, tokens
