"""DR pseudo-outcomes, off-policy values, bootstrap intervals and nuisance models."""

import numpy as np
import pytest
from conftest import MODELS, simulate_logs, true_outcomes

from trainer import (
    DirectMethodRouter,
    best_constant_model,
    constant_policy,
    cross_fit_pseudo_outcomes,
    dr_pseudo_outcomes,
    dr_value,
    dr_value_difference,
    ipw_pseudo_outcomes,
)
from trainer._nuisance import (
    Standardizer,
    add_intercept,
    fit_multinomial_logit,
    softmax,
)


def test_dr_unbiased_with_wrong_outcome_model():
    """With true propensities, DR means are unbiased under a wrong outcome model."""
    X, chosen, propensity, quality, cost = simulate_logs(40000, seed=11)
    wrong_quality = np.full((X.shape[0], 3), 0.5)
    wrong_cost = np.zeros((X.shape[0], 3))
    A, C = dr_pseudo_outcomes(
        chosen, quality, cost, propensity, wrong_quality, wrong_cost, 1e-3
    )
    true_quality, true_cost = true_outcomes(X)
    np.testing.assert_allclose(A.mean(axis=0), true_quality.mean(axis=0), atol=0.02)
    np.testing.assert_allclose(C.mean(axis=0), true_cost.mean(axis=0), rtol=0.1)


def test_dr_exact_with_right_outcome_model():
    """With the true outcome model, DR equals it up to the noise on the served entry."""
    X, chosen, _, quality, cost = simulate_logs(2000, seed=12)
    true_quality, true_cost = true_outcomes(X)
    wrong_propensity = np.full(X.shape[0], 0.5)
    A, C = dr_pseudo_outcomes(
        chosen, quality, cost, wrong_propensity, true_quality, true_cost
    )
    unserved = np.ones_like(A, dtype=bool)
    unserved[np.arange(A.shape[0]), chosen] = False
    np.testing.assert_array_equal(A[unserved], true_quality[unserved])
    np.testing.assert_allclose(A.mean(axis=0), true_quality.mean(axis=0), atol=0.02)


def test_ipw_matches_dr_with_zero_model():
    """IPW pseudo-outcomes equal DR pseudo-outcomes with a zero outcome model."""
    _, chosen, propensity, quality, cost = simulate_logs(300, seed=13)
    zero = np.zeros((300, 3))
    dr = dr_pseudo_outcomes(chosen, quality, cost, propensity, zero, zero, 0.05)
    ipw = ipw_pseudo_outcomes(chosen, quality, cost, propensity, 3, 0.05)
    np.testing.assert_array_equal(dr[0], ipw[0])
    np.testing.assert_array_equal(dr[1], ipw[1])


def test_p_min_clips_weights():
    """Propensities below p_min are clipped, bounding one row's weight at 1 / p_min."""
    chosen = np.array([0])
    A, _ = dr_pseudo_outcomes(
        chosen,
        np.array([1.0]),
        np.array([0.0]),
        np.array([1e-4]),
        np.zeros((1, 2)),
        np.zeros((1, 2)),
        p_min=0.1,
    )
    assert A[0, 0] == pytest.approx(10.0)


def test_dr_value_interval_covers_truth():
    """The bootstrap interval of a constant policy's DR value covers its true value."""
    X, chosen, propensity, quality, cost = simulate_logs(5000, seed=14)
    targets = cross_fit_pseudo_outcomes(
        X, chosen, quality, cost, 3, propensity=propensity, random_state=0
    )
    policy = constant_policy(X.shape[0], 3, 1)
    result = dr_value(policy, targets.quality, targets.cost, 10.0, 500, 0)
    true_quality, true_cost = true_outcomes(X)
    truth = (true_quality[:, 1] - 10.0 * true_cost[:, 1]).mean()
    assert result.ci_low <= truth <= result.ci_high
    assert result.ci_low < result.value < result.ci_high
    assert result.std_error > 0


def test_dr_value_vector_lambda_shapes():
    """A λ vector gives one value and interval per λ."""
    rng = np.random.default_rng(0)
    A, C = rng.random((100, 3)), rng.random((100, 3)) * 0.01
    probs = np.broadcast_to(constant_policy(100, 3, 0), (4, 100, 3))
    result = dr_value(probs, A, C, [0.0, 1.0, 10.0, 100.0], n_boot=50, random_state=0)
    assert result.value.shape == (4,)
    assert np.all(result.ci_low <= result.ci_high)
    assert result.value[0] == pytest.approx(A[:, 0].mean())


def test_paired_difference_narrower_than_separate():
    """The paired difference CI is narrower than the spread of two separate CIs."""
    rng = np.random.default_rng(1)
    shared = rng.normal(size=2000)
    A = np.column_stack([shared, shared + 0.05 + 0.1 * rng.normal(size=2000)])
    C = np.zeros_like(A)
    first, second = constant_policy(2000, 2, 1), constant_policy(2000, 2, 0)
    difference = dr_value_difference(first, second, A, C, 0.0, 400, 0)
    separate = dr_value(first, A, C, 0.0, 400, 0)
    assert difference.value == pytest.approx(A[:, 1].mean() - A[:, 0].mean())
    assert difference.ci_low > 0.0
    assert difference.ci_high - difference.ci_low < separate.ci_high - separate.ci_low


def test_dr_value_mask_renormalises_policy():
    """Mass on a missing model moves to the available ones."""
    A = np.array([[1.0, 0.0], [0.0, 0.5]])
    mask = np.array([[True, False], [True, True]])
    probs = np.array([[0.0, 1.0], [0.0, 1.0]])
    result = dr_value(probs, A, np.zeros_like(A), 0.0, n_boot=0, mask=mask)
    assert result.value == pytest.approx(0.75)


def test_best_constant_model_per_lambda():
    """The best constant model switches to the cheap one as λ grows."""
    A = np.tile([0.5, 0.9], (10, 1))
    C = np.tile([0.0, 0.01], (10, 1))
    best = best_constant_model(A, C, [0.0, 10.0, 100.0])
    np.testing.assert_array_equal(best, [1, 1, 0])
    assert best_constant_model(A, C, 0.0) == 1


def test_multinomial_logit_recovers_probabilities():
    """The propensity model recovers the logging probabilities of a logit policy."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((20000, 3)).astype(np.float32)
    true_coef = np.array([[0.0, 0.5, -0.5], [0.0, 1.5, 0.0], [0.0, 0.0, -1.0]])
    probs = softmax(X @ true_coef)
    labels = (rng.random(20000)[:, None] > probs.cumsum(axis=1)).sum(axis=1)
    Z = add_intercept(Standardizer.fit(X).transform(X))
    coef = fit_multinomial_logit(Z, np.minimum(labels, 2), 3, l2=1e-6)
    assert np.abs(softmax(Z @ coef) - probs).max() < 0.05


def test_direct_method_exact_on_linear_truth():
    """On a linear truth the direct method's outcome model is nearly exact."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((4000, 4)).astype(np.float32)
    chosen = rng.integers(0, 3, 4000)
    truth = 0.5 + 0.1 * X[:, :3]
    quality = truth[np.arange(4000), chosen]
    router = DirectMethodRouter(MODELS, shrinkage=1e-3).fit(
        X, chosen, quality, 0 * quality
    )
    predicted = router.predict_utility(X[:100], 0.0)
    np.testing.assert_allclose(predicted, truth[:100], atol=1e-3)
