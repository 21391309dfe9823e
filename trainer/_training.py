"""Mini-batch training of the policy network with early stopping on DR value."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from ._dr import dr_value, utility
from ._policy import (
    Adam,
    backward,
    classification_loss,
    forward,
    init_params,
    softmax_regret_loss,
)

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # optional: without it BLAS keeps its own thread count
    threadpool_limits = None

logger = logging.getLogger(__name__)


def single_blas_thread():
    """Return a context that limits BLAS to one thread when threadpoolctl exists.

    Mini-batch products are small, and multi-threaded OpenBLAS ran them 5x
    slower than one thread (benchmarks/train.py on a loaded 2-core machine).
    """
    if threadpool_limits is None:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


@dataclass
class PolicyFit:
    """Trained weights and the record of how training went."""

    params: list
    utility_scale: np.ndarray
    best_epoch: int
    validation_value: np.ndarray | None
    history: list = field(default_factory=list)


def utility_scale(A, C, mask, grid):
    """Return a typical utility spread per grid λ, used to weight λ values equally.

    The scale is the median over rows of ``max_t Y - min_t Y``. Without it the
    loss at λ = 10^4 (utilities in the hundreds) would drown the loss at λ = 0
    (utilities in [0, 1]).
    """
    scales = np.empty(grid.size)
    for k, lam in enumerate(grid):
        Y = utility(A, C, lam)
        high = Y if mask is None else np.where(mask, Y, -np.inf)
        low = Y if mask is None else np.where(mask, Y, np.inf)
        spread = high.max(axis=1) - low.min(axis=1)
        value = np.median(spread)
        if not value > 0:
            value = spread.mean()
        scales[k] = value if value > 0 else 1.0
    return scales


def _batch_targets(A, C, grid, scales, per_lambda, n_rows, rng):
    """Return λ mixing weights (rows, L) or None, and scaled utilities (rows, L, K)."""
    if per_lambda:
        alpha = None
        lam = np.broadcast_to(grid, (n_rows, grid.size))
        scale = np.broadcast_to(scales, (n_rows, grid.size))
    else:
        alpha = rng.random((n_rows, grid.size - 1))
        lam = alpha * grid[:-1] + (1.0 - alpha) * grid[1:]
        scale = alpha * scales[:-1] + (1.0 - alpha) * scales[1:]
    Y = (A[:, None, :] - lam[:, :, None] * C[:, None, :]) / scale[:, :, None]
    return alpha, Y


def _batch_step(params, masks, optimizer, Xb, Ab, Cb, mask_b, config, scales, rng):
    n_rows, n_models = Ab.shape
    grid = config["grid"]
    output, activations = forward(params, Xb)
    heads = output.reshape(n_rows, grid.size, n_models)
    alpha, Y = _batch_targets(Ab, Cb, grid, scales, config["per_lambda"], n_rows, rng)
    if alpha is None:
        logits = heads
    else:
        a = alpha[:, :, None].astype(np.float32)
        logits = a * heads[:, :-1] + (1.0 - a) * heads[:, 1:]

    n_points = logits.shape[1]
    flat_logits = logits.reshape(-1, n_models)
    flat_Y = Y.reshape(-1, n_models)
    flat_mask = None
    if mask_b is not None:
        flat_mask = np.repeat(mask_b, n_points, axis=0)
    if config["loss"] == "softmax_regret":
        loss, d_logits = softmax_regret_loss(
            flat_logits, flat_Y, config["tau"], flat_mask
        )
    else:
        loss, d_logits = classification_loss(flat_logits, flat_Y, flat_mask)

    d_logits = d_logits.reshape(n_rows, n_points, n_models)
    if alpha is None:
        d_heads = d_logits
    else:
        d_heads = np.zeros_like(heads)
        d_heads[:, :-1] += a * d_logits
        d_heads[:, 1:] += (1.0 - a) * d_logits
    grads = backward(params, activations, d_heads.reshape(n_rows, -1), masks)
    optimizer.step(params, grads, masks)
    return loss


def validation_values(params, Xs, A, C, mask, grid):
    """Return the DR value of the argmax policy at each grid λ (no bootstrap)."""
    n_models = A.shape[1]
    output, _ = forward(params, Xs)
    heads = output.reshape(Xs.shape[0], grid.size, n_models)
    probs = np.zeros((grid.size,) + A.shape)
    best = heads.argmax(axis=2)
    rows = np.arange(Xs.shape[0])
    for k in range(grid.size):
        probs[k, rows, best[:, k]] = 1.0
    return dr_value(probs, A, C, grid, n_boot=0, mask=mask).value


def fit_policy(Xs, A, C, mask, config, rng, verbose=False):
    """Train the policy network with BLAS limited to one thread; see _fit_policy."""
    with single_blas_thread():
        return _fit_policy(Xs, A, C, mask, config, rng, verbose)


def _fit_policy(Xs, A, C, mask, config, rng, verbose):
    """Train the policy network on standardised features and DR targets.

    ``config`` contains grid, hidden, loss, tau, per_lambda, epochs, batch_size, lr,
    l2, patience and validation_fraction. Training stops when the mean scaled DR
    value on the validation rows has not improved for ``patience`` epochs, and the
    weights of the best epoch are returned.
    """
    grid = config["grid"]
    n, n_models = A.shape
    n_val = int(round(config["validation_fraction"] * n))
    order = rng.permutation(n)
    val_rows, train_rows = order[:n_val], order[n_val:]
    if train_rows.size == 0:
        raise ValueError(
            f"validation_fraction={config['validation_fraction']} leaves no rows "
            "to train on; lower it."
        )
    scales = utility_scale(A[train_rows], C[train_rows], _take(mask, train_rows), grid)

    params, masks = init_params(
        Xs.shape[1], config["hidden"], grid.size, n_models, config["per_lambda"], rng
    )
    optimizer = Adam(params, lr=config["lr"], l2=config["l2"])
    best = (-np.inf, [p.copy() for p in params], 0, None)
    history = []
    stale = 0
    batch_size = min(config["batch_size"], train_rows.size)
    epochs = tqdm(range(1, config["epochs"] + 1), disable=not verbose, desc="epochs")
    for epoch in epochs:
        shuffled = rng.permutation(train_rows)
        losses = []
        for start in range(0, shuffled.size, batch_size):
            rows = shuffled[start : start + batch_size]
            losses.append(
                _batch_step(
                    params,
                    masks,
                    optimizer,
                    Xs[rows],
                    A[rows],
                    C[rows],
                    _take(mask, rows),
                    config,
                    scales,
                    rng,
                )
            )
        train_loss = float(np.mean(losses))
        if n_val == 0:
            history.append((epoch, train_loss, None))
            best = (None, params, epoch, None)
            continue

        values = validation_values(
            params, Xs[val_rows], A[val_rows], C[val_rows], _take(mask, val_rows), grid
        )
        score = float(np.mean(values / scales))
        history.append((epoch, train_loss, score))
        logger.debug(
            "epoch %d: loss %.5f, validation score %.5f", epoch, train_loss, score
        )
        if score > best[0]:
            best = (score, [p.copy() for p in params], epoch, values)
            stale = 0
        else:
            stale += 1
            if stale >= config["patience"]:
                logger.info("early stopping at epoch %d (best %d)", epoch, best[2])
                break

    return PolicyFit(best[1], scales, best[2], best[3], history)


def _take(mask, rows):
    return None if mask is None else mask[rows]
