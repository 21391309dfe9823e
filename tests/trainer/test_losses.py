"""Gradient checks for the surrogate losses and the hand-written backprop."""

import numpy as np
import pytest

from trainer._policy import (
    backward,
    classification_loss,
    forward,
    init_params,
    interpolation_weights,
    mix_heads,
    softmax_regret_loss,
)


def numeric_gradient(function, x, step=1e-6):
    """Return the central finite-difference gradient of a scalar function."""
    grad = np.zeros_like(x)
    for index in np.ndindex(*x.shape):
        original = x[index]
        x[index] = original + step
        high = function(x)
        x[index] = original - step
        low = function(x)
        x[index] = original
        grad[index] = (high - low) / (2 * step)
    return grad


@pytest.fixture
def logits_and_utilities():
    rng = np.random.default_rng(0)
    return rng.normal(size=(6, 4)), rng.normal(size=(6, 4))


@pytest.mark.parametrize("tau", [1.0, 0.3])
def test_softmax_regret_gradient(logits_and_utilities, tau):
    """The softmax-regret gradient matches finite differences."""
    logits, Y = logits_and_utilities
    _, grad = softmax_regret_loss(logits, Y, tau)
    expected = numeric_gradient(lambda g: softmax_regret_loss(g, Y, tau)[0], logits)
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-8)


def test_softmax_regret_masked_gradient(logits_and_utilities):
    """With a mask, missing models get zero gradient and the rest match differences."""
    logits, Y = logits_and_utilities
    mask = np.ones_like(Y, dtype=bool)
    mask[0, 1] = mask[3, 0] = mask[3, 2] = False
    _, grad = softmax_regret_loss(logits, Y, 0.5, mask)
    expected = numeric_gradient(
        lambda g: softmax_regret_loss(g, Y, 0.5, mask)[0], logits
    )
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-8)
    assert np.all(grad[~mask] == 0.0)


def test_softmax_regret_equals_expected_regret():
    """The loss equals the regret of the softmax policy computed by hand."""
    logits = np.array([[0.0, np.log(3.0)]])
    Y = np.array([[1.0, 0.0]])
    loss, _ = softmax_regret_loss(logits, Y)
    assert loss == pytest.approx(0.75)


def test_classification_gradient(logits_and_utilities):
    """The weighted cross-entropy gradient matches finite differences."""
    logits, Y = logits_and_utilities
    _, grad = classification_loss(logits, Y)
    expected = numeric_gradient(lambda g: classification_loss(g, Y)[0], logits)
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-8)


def test_classification_bounds_argmax_regret(logits_and_utilities):
    """The classification loss is at least the empirical regret of the argmax policy."""
    logits, Y = logits_and_utilities
    loss, _ = classification_loss(logits, Y)
    chosen = logits.argmax(axis=1)
    regret = (Y.max(axis=1) - Y[np.arange(Y.shape[0]), chosen]).mean()
    assert loss >= regret


@pytest.mark.parametrize("per_lambda", [False, True])
def test_mlp_backprop_gradient(per_lambda):
    """Backprop through a two-layer trunk and the heads matches finite differences."""
    rng = np.random.default_rng(1)
    params, masks = init_params(4, (5, 3), 3, 2, per_lambda, rng)
    params = [p.astype(np.float64) for p in params]
    X = rng.normal(size=(7, 4))
    target = rng.normal(size=(7, 6))

    def loss_of(values, index):
        trial = list(params)
        trial[index] = values
        output, _ = forward(trial, X)
        return 0.5 * ((output - target) ** 2).sum()

    output, activations = forward(params, X)
    grads = backward(params, activations, output - target, masks)
    for index, param in enumerate(params):
        expected = numeric_gradient(
            lambda values, index=index: loss_of(values, index), param.copy()
        )
        if masks[index] is not None:
            expected = expected * masks[index]
        np.testing.assert_allclose(grads[index], expected, rtol=1e-4, atol=1e-6)


def test_interpolation_matches_affine_mix():
    """Logits between grid points are the exact affine mix of the two end heads."""
    grid = np.array([0.0, 1.0, 3.0, 10.0])
    rng = np.random.default_rng(2)
    heads = rng.normal(size=(5, 4, 3)).astype(np.float32)
    lam = np.array([0.0, 2.0, 2.5, 10.0, 50.0], dtype=np.float32)
    mixed = mix_heads(heads, interpolation_weights(lam, grid))
    np.testing.assert_allclose(mixed[0], heads[0, 0], atol=1e-6)
    np.testing.assert_allclose(
        mixed[1], 0.5 * heads[1, 1] + 0.5 * heads[1, 2], atol=1e-6
    )
    np.testing.assert_allclose(
        mixed[2], 0.25 * heads[2, 1] + 0.75 * heads[2, 2], atol=1e-6
    )
    np.testing.assert_allclose(mixed[3], heads[3, 3], atol=1e-6)
    np.testing.assert_allclose(mixed[4], heads[4, 3], atol=1e-6)


def test_interpolation_weights_sum_to_one():
    """Hat weights are non-negative, have at most two non-zeros and sum to one."""
    grid = np.array([0.0, 1.0, 3.0, 10.0, 30.0])
    lam = np.linspace(0.0, 40.0, 401).astype(np.float32)
    weights = interpolation_weights(lam, grid)
    assert np.all(weights >= 0.0)
    assert np.all((weights > 0).sum(axis=1) <= 2)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6)
