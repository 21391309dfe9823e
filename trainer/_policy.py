"""Policy network: ReLU MLP trunk, one logit head per λ grid point, numpy backprop.

For λ in ``[λ_k, λ_k+1]`` the logits are ``α g_k(x) + (1 - α) g_k+1(x)`` with
``α = (λ_k+1 - λ) / (λ_k+1 - λ_k)``. The forward pass writes this as a hat
basis, ``w_k(λ) = max(0, min(left_k(λ), right_k(λ)))``, so the ONNX graph can
compute the same weights without an index lookup. λ outside the grid is
clamped to its ends.

The two surrogate losses take utilities ``Y`` (rows, K) and return the loss and
its gradient with respect to the logits:

- ``softmax_regret_loss``: ``mean_i Σ_t softmax(g_i / τ)_t (max_s Y_is - Y_it)``,
  the expected regret of the softmax policy;
- ``classification_loss``: ``mean_i w_i CE(softmax(g_i), argmax_t Y_it)`` with
  ``w_i = max_t Y_it - min_t Y_it``, an upper bound on the argmax policy's regret.
"""

from __future__ import annotations

import numpy as np


def hat_coefficients(grid: np.ndarray):
    """Return float32 slopes and offsets of the hat basis over ``grid``.

    ``left_k(λ) = λ * left_slope_k + left_offset_k`` equals
    ``(λ - λ_k-1) / (λ_k - λ_k-1)`` and is fixed at 1 for the first point.
    ``right_k`` mirrors it towards ``λ_k+1`` and is 1 for the last point.
    """
    grid = np.asarray(grid, dtype=np.float64)
    widths = np.diff(grid)
    left_slope = np.zeros_like(grid)
    left_offset = np.ones_like(grid)
    left_slope[1:] = 1.0 / widths
    left_offset[1:] = -grid[:-1] / widths
    right_slope = np.zeros_like(grid)
    right_offset = np.ones_like(grid)
    right_slope[:-1] = -1.0 / widths
    right_offset[:-1] = grid[1:] / widths
    coefficients = (left_slope, left_offset, right_slope, right_offset)
    return tuple(c.astype(np.float32) for c in coefficients)


def interpolation_weights(lam: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Return the (n, M) float32 weights of each grid head at each λ."""
    left_slope, left_offset, right_slope, right_offset = hat_coefficients(grid)
    lam = np.clip(np.asarray(lam, dtype=np.float32), grid[0], grid[-1])
    lam = lam.astype(np.float32)[:, None]
    left = lam * left_slope + left_offset
    right = lam * right_slope + right_offset
    return np.maximum(np.minimum(left, right), np.float32(0.0))


def mix_heads(head_logits: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Return ``Σ_k w_k g_k`` for head logits (n, M, K) and weights (n, M)."""
    return (weights[:, :, None] * head_logits).sum(axis=1)


def init_params(n_features, hidden, n_heads, n_models, per_lambda, rng):
    """Return He-initialised float32 weights and the masks that fix zero blocks.

    With ``per_lambda`` every hidden layer holds one block per head and the masks
    keep the weights block-diagonal, which makes the network M independent
    per-λ networks that share nothing but the graph.
    """
    blocks = n_heads if per_lambda else 1
    sizes = [n_features] + [h * blocks for h in hidden]
    params, masks = [], []
    for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        std = np.sqrt(2.0 / (fan_in if layer == 0 else fan_in // blocks))
        weight = rng.normal(0.0, std, (fan_in, fan_out)).astype(np.float32)
        mask = (
            None if layer == 0 or blocks == 1 else _block_mask(fan_in, fan_out, blocks)
        )
        params += [_apply(weight, mask), np.zeros(fan_out, dtype=np.float32)]
        masks += [mask, None]

    fan_in = sizes[-1]
    std = np.sqrt(1.0 / (fan_in // blocks))
    if per_lambda:
        head = rng.normal(0.0, std, (fan_in, n_heads * n_models))
        mask = _block_mask(fan_in, n_heads * n_models, blocks)
    else:
        # Heads start equal, so the initial policy does not change with λ.
        head = np.tile(rng.normal(0.0, std, (fan_in, n_models)), (1, n_heads))
        mask = None
    params += [_apply(head.astype(np.float32), mask)]
    params += [np.zeros(n_heads * n_models, dtype=np.float32)]
    masks += [mask, None]
    return params, masks


def _block_mask(fan_in, fan_out, blocks):
    rows = np.arange(fan_in) // (fan_in // blocks)
    cols = np.arange(fan_out) // (fan_out // blocks)
    return (rows[:, None] == cols[None, :]).astype(np.float32)


def _apply(weight, mask):
    return weight if mask is None else weight * mask


def forward(params, Xs):
    """Return the head output (n, M*K) and the layer inputs needed by backward."""
    activations = [Xs]
    hidden = Xs
    n_layers = len(params) // 2
    for layer in range(n_layers - 1):
        weight, bias = params[2 * layer], params[2 * layer + 1]
        hidden = np.maximum(hidden @ weight + bias, np.float32(0.0))
        activations.append(hidden)
    return hidden @ params[-2] + params[-1], activations


def backward(params, activations, d_output, masks):
    """Return gradients of every parameter given d(loss)/d(head output)."""
    grads = [None] * len(params)
    delta = d_output
    for layer in reversed(range(len(params) // 2)):
        weight = params[2 * layer]
        grads[2 * layer] = _apply(activations[layer].T @ delta, masks[2 * layer])
        grads[2 * layer + 1] = delta.sum(axis=0)
        if layer > 0:
            delta = (delta @ weight.T) * (activations[layer] > 0)
    return grads


def _masked_logits(logits, mask):
    if mask is None:
        return logits
    return np.where(mask, logits, -np.inf)


def softmax_regret_loss(logits, Y, tau=1.0, mask=None):
    """Return the mean softmax-weighted regret and its gradient w.r.t. ``logits``.

    ``d loss / d g_t = p_t (r_t - Σ_s p_s r_s) / τ / n`` with ``r`` the regret.
    Entries where ``mask`` is False get probability 0 and gradient 0.
    """
    scaled = _masked_logits(logits / tau, mask)
    probs = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    available = Y if mask is None else np.where(mask, Y, -np.inf)
    regret = available.max(axis=1, keepdims=True) - Y
    if mask is not None:
        regret = np.where(mask, regret, 0.0)
    expected = (probs * regret).sum(axis=1, keepdims=True)
    n = logits.shape[0]
    grad = probs * (regret - expected) / (tau * n)
    return float(expected.mean()), grad.astype(logits.dtype)


def classification_loss(logits, Y, mask=None):
    """Return the regret-weighted cross-entropy and its gradient w.r.t. ``logits``.

    Each row's label is its best model and its weight the spread of its utilities,
    so the loss bounds the empirical regret of the argmax policy from above.
    """
    masked = _masked_logits(logits, mask)
    shifted = masked - masked.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    high = Y if mask is None else np.where(mask, Y, -np.inf)
    low = Y if mask is None else np.where(mask, Y, np.inf)
    labels = high.argmax(axis=1)
    weights = high.max(axis=1) - low.min(axis=1)
    rows = np.arange(logits.shape[0])
    n = logits.shape[0]
    loss = float((weights * -log_probs[rows, labels]).mean())
    grad = np.exp(log_probs)
    grad[rows, labels] -= 1.0
    grad *= (weights / n)[:, None]
    return loss, grad.astype(logits.dtype)


class Adam:
    """Adam optimiser (Kingma and Ba, 2015) with L2 on weight matrices only."""

    def __init__(self, params, lr=1e-3, l2=0.0, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr, self.l2 = lr, l2
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.first = [np.zeros_like(p) for p in params]
        self.second = [np.zeros_like(p) for p in params]
        self.steps = 0

    def step(self, params, grads, masks):
        """Update ``params`` in place; masked-out weights stay at zero."""
        self.steps += 1
        correction1 = 1.0 - self.beta1**self.steps
        correction2 = 1.0 - self.beta2**self.steps
        for i, (param, grad) in enumerate(zip(params, grads)):
            if param.ndim == 2 and self.l2:
                grad = grad + _apply(self.l2 * param, masks[i])
            self.first[i] = self.beta1 * self.first[i] + (1 - self.beta1) * grad
            self.second[i] = self.beta2 * self.second[i] + (1 - self.beta2) * grad**2
            update = (self.first[i] / correction1) / (
                np.sqrt(self.second[i] / correction2) + self.eps
            )
            param -= (self.lr * update).astype(param.dtype)
