"""Options of the DR targets: log cost model, weight shrinkage, grouped folds, fit_targets."""

import numpy as np
import pytest
from conftest import MODELS, simulate_logs

from trainer import (
    DirectMethodRouter,
    PseudoOutcomes,
    RouterTrainer,
    cross_fit_pseudo_outcomes,
    dr_pseudo_outcomes,
    dr_weights,
)
from trainer._nuisance import make_folds

PRICES = np.array([2e-7, 2e-6, 2e-5])  # USD per token, 100x apart
NOISE = 0.5  # standard deviation of log(tokens) around its mean


def priced_logs(n=4000, seed=0):
    """Return logs whose cost is each model's price times log-normal token counts.

    The mean of ``log(tokens)`` is ``6 + 0.5 x1`` for every model, so cost has
    a multiplicative structure: one slope in log space, prices 100x apart.
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4)).astype(np.float32)
    chosen = rng.integers(0, 3, n)
    log_tokens = 6.0 + 0.5 * X[:, 0] + rng.normal(0.0, NOISE, n)
    cost = PRICES[chosen] * np.exp(log_tokens)
    quality = rng.random(n)
    return X, chosen, quality, cost


def expected_cost(X):
    """Return the true mean cost (n, 3), including the log-normal mean factor."""
    tokens = np.exp(6.0 + 0.5 * X[:, 0].astype(np.float64) + NOISE**2 / 2)
    return tokens[:, None] * PRICES[None, :]


def relative_error(predicted, truth):
    return np.abs(predicted / truth - 1.0)


def test_log_cost_model_recovers_prices():
    """The log cost model predicts each model's cost to a few percent."""
    X, chosen, quality, cost = priced_logs()
    router = DirectMethodRouter(MODELS, cost_model="log").fit(X, chosen, quality, cost)
    test = np.random.default_rng(1).standard_normal((2000, 4)).astype(np.float32)
    predicted = router.outcome_model_.predict(test)["cost"]
    truth = expected_cost(test)
    assert np.median(relative_error(predicted, truth)) < 0.05
    ratios = predicted[:, 2] / predicted[:, 0]
    np.testing.assert_allclose(np.median(ratios), PRICES[2] / PRICES[0], rtol=0.05)


def test_log_cost_beats_linear_cost():
    """The linear cost model, one slope in USD for all models, fits far worse."""
    X, chosen, quality, cost = priced_logs()
    test = np.random.default_rng(1).standard_normal((2000, 4)).astype(np.float32)
    truth = expected_cost(test)
    errors = {}
    for cost_model in ("log", "linear"):
        router = DirectMethodRouter(MODELS, cost_model=cost_model)
        predicted = router.fit(X, chosen, quality, cost).outcome_model_.predict(test)
        errors[cost_model] = np.median(relative_error(predicted["cost"], truth))
    assert errors["linear"] > 3 * errors["log"]


def test_smearing_matches_mean_cost():
    """Smearing factors undo the exp(σ²/2) bias of exp(mean log cost)."""
    X, chosen, quality, cost = priced_logs()
    router = DirectMethodRouter(MODELS).fit(X, chosen, quality, cost)
    smearing = router.outcome_model_.cost_smearing
    np.testing.assert_allclose(smearing, np.exp(NOISE**2 / 2), rtol=0.05)
    predicted = router.outcome_model_.predict(X)["cost"]
    for t in range(3):
        rows = chosen == t
        observed = cost[rows].mean()
        np.testing.assert_allclose(predicted[rows, t].mean(), observed, rtol=0.03)


def test_cross_fit_log_cost_targets_in_usd():
    """Cross-fitted log-cost targets are in USD and unbiased for the mean cost."""
    X, chosen, quality, cost = priced_logs()
    targets = cross_fit_pseudo_outcomes(
        X,
        chosen,
        quality,
        cost,
        3,
        propensity=np.full(X.shape[0], 1.0 / 3.0),
        cost_model="log",
        random_state=0,
    )
    truth = expected_cost(X).mean(axis=0)
    np.testing.assert_allclose(targets.cost.mean(axis=0), truth, rtol=0.05)
    assert targets.outcome_model.cost_model == "log"


def test_zero_costs_stay_finite():
    """Free calls do not send the log cost model to minus infinity."""
    X, chosen, quality, cost = priced_logs(n=600)
    cost[chosen == 0] = 0.0
    router = DirectMethodRouter(MODELS).fit(X, chosen, quality, cost)
    predicted = router.outcome_model_.predict(X)["cost"]
    assert np.isfinite(predicted).all()
    assert predicted[:, 0].max() < 1e-6


@pytest.mark.parametrize("shrink", [1.0, 25.0, 400.0])
def test_shrunk_weights_bounded(shrink):
    """Shrunk weights never exceed sqrt(s) / 2, the value at w = sqrt(s)."""
    propensity = np.geomspace(1e-4, 1.0, 2000)
    weights = dr_weights(propensity, p_min=1e-4, weighting="shrink", shrink=shrink)
    assert weights.max() <= np.sqrt(shrink) / 2 + 1e-12
    assert weights.min() > 0
    peak = dr_weights(np.array([1 / np.sqrt(shrink)]), 1e-4, "shrink", shrink)
    np.testing.assert_allclose(peak, np.sqrt(shrink) / 2)


def test_clipped_weights_bounded():
    weights = dr_weights(np.array([1e-6, 0.01, 0.5]), p_min=0.02)
    np.testing.assert_allclose(weights, [50.0, 50.0, 2.0])


def test_shrink_leans_on_outcome_model():
    """A row with a tiny propensity moves its target much less when shrunk."""
    chosen = np.array([0])
    prediction = np.array([[0.2, 0.5]])
    args = (chosen, np.array([1.0]), np.array([0.0]), np.array([0.02]))
    clipped, _ = dr_pseudo_outcomes(*args, prediction, np.zeros((1, 2)))
    shrunk, _ = dr_pseudo_outcomes(
        *args, prediction, np.zeros((1, 2)), weighting="shrink", shrink=25.0
    )
    assert clipped[0, 0] == pytest.approx(0.2 + 0.8 * 50.0)
    assert shrunk[0, 0] == pytest.approx(0.2 + 0.8 * 25.0 * 50.0 / (2500.0 + 25.0))
    assert shrunk[0, 1] == clipped[0, 1] == 0.5


def test_invalid_weighting_rejected():
    with pytest.raises(ValueError, match="weighting"):
        dr_weights(np.array([0.5]), weighting="self_normalized")
    with pytest.raises(ValueError, match="shrink"):
        dr_weights(np.array([0.5]), weighting="shrink", shrink=0.0)


def test_grouped_folds_keep_groups_together():
    """Every row of a group gets the same fold, and groups are balanced."""
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 50, 1000)
    folds = make_folds(groups.size, 3, np.random.default_rng(1), groups)
    for group in np.unique(groups):
        assert np.unique(folds[groups == group]).size == 1
    group_folds = np.array([folds[groups == g][0] for g in np.unique(groups)])
    counts = np.bincount(group_folds, minlength=3)
    assert counts.max() - counts.min() <= 1


def test_grouped_folds_reject_few_groups():
    with pytest.raises(ValueError, match="distinct groups"):
        make_folds(10, 3, np.random.default_rng(0), np.array([0, 1] * 5))
    with pytest.raises(ValueError, match="one id per row"):
        make_folds(10, 3, np.random.default_rng(0), np.arange(9))


def test_singleton_groups_equal_row_folds():
    """One group per row gives the same folds, so the same targets, as no groups."""
    X, chosen, propensity, quality, cost = simulate_logs(600, seed=2)
    common = dict(propensity=propensity, random_state=0)
    plain = cross_fit_pseudo_outcomes(X, chosen, quality, cost, 3, **common)
    grouped = cross_fit_pseudo_outcomes(
        X, chosen, quality, cost, 3, groups=np.arange(600), **common
    )
    np.testing.assert_array_equal(plain.quality, grouped.quality)


def test_trainer_passes_groups_to_folds():
    """A prompt logged twice with different outcomes lands in one fold."""
    X, chosen, propensity, quality, cost = simulate_logs(400, seed=4)
    X = np.vstack([X, X])
    groups = np.tile(np.arange(400), 2)
    arrays = [np.concatenate([a, a]) for a in (chosen, propensity, quality, cost)]
    trainer = RouterTrainer(MODELS, random_state=0, epochs=1, hidden=(4,))
    trainer.fit(X, arrays[0], arrays[2], arrays[3], arrays[1], groups=groups)
    assert trainer.pseudo_outcomes_.quality.shape == (800, 3)
    with pytest.raises(ValueError, match="one id per row"):
        trainer.fit(X, arrays[0], arrays[2], arrays[3], arrays[1], groups=groups[:10])


def test_fit_targets_equals_fit():
    """fit_targets on the targets fit built trains the identical network."""
    X, chosen, propensity, quality, cost = simulate_logs(800, seed=5)
    settings = dict(random_state=3, hidden=(8,), epochs=5)
    fitted = RouterTrainer(MODELS, **settings).fit(X, chosen, quality, cost, propensity)
    again = RouterTrainer(MODELS, **settings).fit_targets(X, fitted.pseudo_outcomes_)
    assert again.best_epoch_ == fitted.best_epoch_
    for first, second in zip(fitted.params_, again.params_):
        np.testing.assert_array_equal(first, second)
    assert again.propensity_source_ == "targets"


def test_fit_targets_rejects_mismatched_targets():
    X, chosen, propensity, quality, cost = simulate_logs(300, seed=6)
    targets = cross_fit_pseudo_outcomes(
        X, chosen, quality, cost, 3, propensity=propensity, random_state=0
    )
    trainer = RouterTrainer(MODELS, epochs=1)
    with pytest.raises(ValueError, match="shape"):
        trainer.fit_targets(X[:100], targets)
    with pytest.raises(TypeError, match="PseudoOutcomes"):
        trainer.fit_targets(X, (targets.quality, targets.cost))
    assert isinstance(targets, PseudoOutcomes)


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(weighting="ratio"), "weighting"),
        (dict(shrink=-1.0), "shrink"),
        (dict(cost_model="exp"), "cost_model"),
    ],
)
def test_trainer_rejects_invalid_target_options(options, message):
    X, chosen, propensity, quality, cost = simulate_logs(100, seed=7)
    with pytest.raises(ValueError, match=message):
        RouterTrainer(MODELS, epochs=1, **options).fit(X, chosen, quality, cost)
