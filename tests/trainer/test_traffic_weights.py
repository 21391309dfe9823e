"""The promotion rule weighs each grid λ by the traffic logged there."""

from __future__ import annotations

import numpy as np
import pytest

from trainer._retrain_eval import compare, traffic_weights

GRID = np.array([0.0, 10.0, 30.0, 100.0])


def test_weights_split_between_neighbours():
    """A request at λ = 20 counts half at 10 and half at 30."""
    weights = traffic_weights(np.array([20.0]), GRID)
    assert weights.tolist() == pytest.approx([0.0, 0.5, 0.5, 0.0])


def test_weights_clamp_and_ignore_nan():
    """λ beyond the grid counts at its end, and NaN rows are ignored."""
    weights = traffic_weights(np.array([500.0, np.nan, 0.0]), GRID)
    assert weights.tolist() == pytest.approx([0.5, 0.0, 0.0, 0.5])


def test_no_logged_lambda_is_uniform():
    """Without any logged λ every grid point weighs the same."""
    assert traffic_weights(None, GRID).tolist() == pytest.approx([0.25] * 4)


def test_large_lambda_loss_outside_traffic_does_not_block():
    """A candidate better where traffic sits passes despite a loss at an unused λ."""
    rng = np.random.default_rng(0)
    n = 400
    current = rng.normal(0.5, 0.1, size=(GRID.size, n))
    candidate = current + np.array([0.0, 0.05, 0.05, -5.0])[:, None]
    rows = {"current": current, "candidate": candidate}
    weights = traffic_weights(np.full(n, 20.0), GRID)

    weighted = compare(rows, "current", GRID, 200, 0, weights)
    unweighted = compare(rows, "current", GRID, 200, 0)

    assert weighted.differences["candidate"]["passes"]
    assert not unweighted.differences["candidate"]["passes"]
