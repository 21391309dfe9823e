"""Behaviour of RouterTrainer and the direct-method baseline on synthetic logs."""

import numpy as np
import pytest
from conftest import MODELS, simulate_logs, true_outcomes, true_regret

from trainer import DirectMethodRouter, NotFittedError, RouterTrainer

# The outcome models are misspecified on these logs, so only the unbiased
# clipped weights give DR its edge. The default shrunk weights lean on the
# outcome model and route almost like the direct method here.
FAST = dict(hidden=(32,), lr=3e-3, epochs=60, validation_fraction=0.0, weighting="clip")


@pytest.fixture(scope="module")
def fitted_dr(biased_logs):
    X, chosen, propensity, quality, cost = biased_logs
    trainer = RouterTrainer(MODELS, random_state=0, **FAST)
    return trainer.fit(X, chosen, quality, cost, propensity=propensity)


@pytest.fixture(scope="module")
def fitted_dm(biased_logs):
    X, chosen, _, quality, cost = biased_logs
    return DirectMethodRouter(MODELS).fit(X, chosen, quality, cost)


@pytest.mark.parametrize("lam", [0.0, 10.0, 100.0])
def test_dr_softmax_regret_low_regret(fitted_dr, test_features, lam):
    """DR with softmax regret nearly matches the optimal policy on biased logs."""
    regret = true_regret(fitted_dr.predict(test_features, lam), test_features, lam)
    assert regret < 0.03


@pytest.mark.parametrize("lam", [0.0, 10.0, 100.0])
def test_direct_method_worse_than_dr(fitted_dr, fitted_dm, test_features, lam):
    """The misspecified direct method has clearly higher regret than DR on the logs."""
    dr = true_regret(fitted_dr.predict(test_features, lam), test_features, lam)
    dm = true_regret(fitted_dm.predict(test_features, lam), test_features, lam)
    assert dm > dr + 0.05


def test_predict_between_grid_points_mixes_heads(fitted_dr, test_features):
    """decision_function at λ between grid points is the affine mix of both heads."""
    grid = fitted_dr.lambda_grid_
    heads = fitted_dr.head_logits(test_features[:50])
    lam = 0.3 * grid[3] + 0.7 * grid[4]
    logits = fitted_dr.decision_function(test_features[:50], lam)
    expected = 0.3 * heads[:, 3] + 0.7 * heads[:, 4]
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)


def test_lambda_above_grid_uses_last_head(fitted_dr, test_features):
    """λ above the grid gives the logits of the last head."""
    heads = fitted_dr.head_logits(test_features[:20])
    logits = fitted_dr.decision_function(test_features[:20], 1e6)
    np.testing.assert_allclose(logits, heads[:, -1], atol=1e-6)


def test_chosen_cost_non_increasing_in_lambda(test_features):
    """On affine synthetic utilities the chosen model's true cost falls as λ grows."""
    X = np.random.default_rng(5).standard_normal((3000, 5)).astype(np.float32)
    quality, cost = true_outcomes(X)
    trainer = RouterTrainer(MODELS, random_state=0, **FAST).fit_full(X, quality, cost)
    sweep = np.concatenate([[0.0], np.geomspace(0.1, 2e4, 80)])
    chosen = np.stack([trainer.predict(test_features, lam) for lam in sweep])
    chosen_cost = true_outcomes(test_features)[1][
        np.arange(test_features.shape[0]), chosen
    ]
    increases = np.diff(chosen_cost, axis=0) > 0
    # The mix of two heads can briefly favour a third model near a tie, so allow
    # at most 1 in 10,000 adjacent λ steps to raise the cost.
    assert increases.mean() < 1e-4
    mean_cost = chosen_cost.mean(axis=1)
    assert np.all(np.diff(mean_cost) <= 0.0)
    assert chosen[0].mean() > chosen[-1].mean()


def test_random_state_repeatable(biased_logs):
    """Two fits with the same random_state give identical logits."""
    X, chosen, propensity, quality, cost = biased_logs
    settings = dict(FAST, epochs=3)
    first = RouterTrainer(MODELS, random_state=7, **settings)
    second = RouterTrainer(MODELS, random_state=7, **settings)
    first.fit(X[:1000], chosen[:1000], quality[:1000], cost[:1000], propensity[:1000])
    second.fit(X[:1000], chosen[:1000], quality[:1000], cost[:1000], propensity[:1000])
    np.testing.assert_array_equal(
        first.decision_function(X[:50], 3.0), second.decision_function(X[:50], 3.0)
    )


def test_estimated_propensity_and_early_stopping():
    """Without logged propensities the trainer estimates them and still routes well."""
    X, chosen, _, quality, cost = simulate_logs(4000, seed=3)
    trainer = RouterTrainer(
        MODELS,
        random_state=0,
        hidden=(32,),
        lr=3e-3,
        epochs=60,
        patience=15,
        weighting="clip",
    ).fit(X, chosen, quality, cost)
    test = np.random.default_rng(9).standard_normal((3000, 5)).astype(np.float32)
    assert trainer.propensity_source_ == "estimated"
    assert 1 <= trainer.best_epoch_ <= 60
    assert trainer.validation_value_.shape == trainer.lambda_grid_.shape
    assert true_regret(trainer.predict(test, 0.0), test, 0.0) < 0.06


def test_fit_full_masks_missing_entries():
    """NaN entries are masked: a model missing everywhere is never preferred for it."""
    X = np.random.default_rng(4).standard_normal((2000, 5)).astype(np.float32)
    quality, cost = true_outcomes(X)
    quality[::2, 1] = np.nan
    cost[1::4, 2] = np.nan
    trainer = RouterTrainer(MODELS, random_state=0, **FAST).fit_full(X, quality, cost)
    assert trainer.pseudo_outcomes_.mask[::2, 1].sum() == 0
    assert np.isfinite(trainer.pseudo_outcomes_.quality).all()
    test = np.random.default_rng(8).standard_normal((2000, 5)).astype(np.float32)
    assert true_regret(trainer.predict(test, 0.0), test, 0.0) < 0.03


@pytest.mark.parametrize(
    "options", [dict(per_lambda=True), dict(loss="classification")]
)
def test_variants_learn(biased_logs, test_features, options):
    """Per-λ networks and the classification loss also learn a good policy."""
    X, chosen, propensity, quality, cost = biased_logs
    trainer = RouterTrainer(MODELS, random_state=0, **{**FAST, **options})
    trainer.fit(X, chosen, quality, cost, propensity=propensity)
    assert true_regret(trainer.predict(test_features, 10.0), test_features, 10.0) < 0.05


def test_ipw_targets_ignore_outcome_model(biased_logs):
    """IPW pseudo-outcomes are zero for every model the row did not call."""
    X, chosen, propensity, quality, cost = biased_logs
    trainer = RouterTrainer(MODELS, random_state=0, pseudo_outcomes="ipw", epochs=1)
    trainer.fit(X, chosen, quality, cost, propensity=propensity)
    A = trainer.pseudo_outcomes_.quality
    unserved = np.ones_like(A, dtype=bool)
    unserved[np.arange(A.shape[0]), chosen] = False
    assert np.all(A[unserved] == 0.0)


@pytest.mark.parametrize("method", ["predict", "predict_proba", "decision_function"])
def test_predict_before_fit_names_class(method):
    """Calling a prediction method before fit raises NotFittedError naming the class."""
    trainer = RouterTrainer(MODELS)
    with pytest.raises(NotFittedError, match="RouterTrainer"):
        getattr(trainer, method)(np.zeros((2, 5), dtype=np.float32), 1.0)


def test_export_before_fit_names_class(tmp_path):
    """export before fit raises NotFittedError, which is also a ValueError."""
    with pytest.raises(ValueError, match="RouterTrainer"):
        RouterTrainer(MODELS).export(tmp_path)


def _valid_logs():
    X, chosen, propensity, quality, cost = simulate_logs(50, seed=1)
    return dict(X=X, chosen=chosen, quality=quality, cost=cost, propensity=propensity)


@pytest.mark.parametrize(
    ("argument", "value", "message"),
    [
        ("X", np.zeros(50), "X must be a non-empty 2-d array"),
        ("X", np.full((50, 5), np.nan), "X contains NaN"),
        ("chosen", np.full(50, 3), "chosen must contain indices in"),
        ("chosen", np.zeros(49, dtype=int), r"chosen must have shape \(50,\)"),
        ("quality", np.full(50, 1.5), "quality must be <= 1.0"),
        ("quality", np.full(50, np.nan), "quality contains NaN"),
        ("cost", np.full(50, -0.1), "cost must be >= 0.0"),
        ("propensity", np.zeros(50), "propensity must be > 0.0"),
        ("propensity", np.full(50, 1.2), "propensity must be <= 1.0"),
    ],
)
def test_fit_rejects_invalid_argument(argument, value, message):
    """fit raises ValueError that names the invalid argument."""
    arguments = _valid_logs()
    arguments[argument] = value
    with pytest.raises(ValueError, match=message):
        RouterTrainer(MODELS, epochs=1).fit(**arguments)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(models=["a"]), "models must name at least 2"),
        (dict(lambda_grid=[0.0, 10.0, 5.0]), "lambda_grid must be strictly increasing"),
        (dict(loss="hinge"), "loss must be one of"),
        (dict(tau=0.0), "tau must be > 0"),
    ],
)
def test_fit_rejects_invalid_parameter(options, message):
    """fit raises ValueError that names the invalid constructor parameter."""
    settings = {"models": MODELS, **options}
    arguments = _valid_logs()
    with pytest.raises(ValueError, match=message):
        RouterTrainer(**settings).fit(**arguments)


def test_fit_full_rejects_quality_out_of_range():
    """fit_full names quality_matrix when an observed entry is outside [0, 1]."""
    X = np.zeros((4, 2), dtype=np.float32)
    quality = np.full((4, 3), 0.5)
    quality[0, 0] = 2.0
    with pytest.raises(ValueError, match="quality_matrix must be <= 1.0"):
        RouterTrainer(MODELS).fit_full(X, quality, np.full((4, 3), 0.01))


def test_predict_rejects_negative_lambda(fitted_dr, test_features):
    """predict names lam when it is negative."""
    with pytest.raises(ValueError, match="lam must be finite and >= 0"):
        fitted_dr.predict(test_features[:3], -1.0)


def test_predict_rejects_wrong_feature_count(fitted_dr):
    """predict rejects another feature dimension and names the embedder as the fix."""
    with pytest.raises(ValueError, match="same embedder"):
        fitted_dr.predict(np.zeros((3, 4), dtype=np.float32), 1.0)
