"""Candidate routers fitted by ``smartllm retrain`` and their ONNX export.

Three candidates are fitted on the training slice of the log:

- ``dr-policy``: :class:`RouterTrainer` on doubly robust pseudo-outcomes with
  the logged propensities (the causal policy);
- ``dr-learner``: argmax of the predicted utility ``m_a(x, t) - λ m_c(x, t)``
  of ridge regressions of the DR pseudo-outcomes on the features;
- ``constant``: at each grid λ, the model with the best DR value on the
  training slice.

The last two are linear in the standardised features, so they are written as
a one-layer :class:`RouterTrainer` and exported through the same code path,
which keeps the router.onnx and router.json contract of a trained router.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._dr import best_constant_model
from ._estimator import RouterTrainer
from ._nuisance import add_intercept
from ._retrain_data import LoggedRows
from ._targets import OutcomeModel

logger = logging.getLogger(__name__)

# Logit gap between the chosen model and the others in the constant router:
# softmax gives the others a combined share of (K - 1) e^-30, about 1e-13.
CONSTANT_LOGIT = 30.0
# The DR-learner's logits are its predicted utility, and router.json sets the
# softmax temperature to 1 / DR_LEARNER_SHARPNESS. Scaling the temperature
# instead of the logits keeps the logits small enough for the export's check
# of absolute differences between ONNX and numpy (1e-5).
DR_LEARNER_SHARPNESS = 20.0
# Ridge penalty of the DR-learner on standardised features.
DR_LEARNER_ALPHA = 100.0
# Training rows from which 10% are held out for early stopping.
EARLY_STOPPING_MIN_ROWS = 2000


@dataclass
class Candidate:
    """A fitted candidate: its name, a RouterTrainer-compatible policy and a description."""

    name: str
    policy: RouterTrainer
    description: str
    details: dict


@dataclass(frozen=True)
class FitSettings:
    """Size and seed of the learned policy. Small defaults keep retraining fast."""

    hidden: int = 32
    epochs: int = 60
    lambda_grid: tuple[float, ...] | None = None
    random_state: int = 0
    progress: bool = False


def fit_candidates(train: LoggedRows, router_models: list[str], settings: FitSettings):
    """Fit the three candidates on the rows served by ``router_models``."""
    column = {m: i for i, m in enumerate(router_models)}
    # NOTE: dropping the rows served by under-explored models shifts the row
    # distribution wherever the logging policy favoured them, a small bias.
    keep = np.isin(np.array(train.models)[train.chosen], router_models)
    rows = train.subset(keep)
    chosen = np.array([column[rows.models[t]] for t in rows.chosen], dtype=np.int64)

    # Early stopping needs a validation slice large enough to rank epochs. On
    # smaller logs its DR value is noise, which stopped training after one epoch.
    validation = 0.1 if rows.X.shape[0] >= EARLY_STOPPING_MIN_ROWS else 0.0
    trainer = RouterTrainer(
        models=router_models,
        lambda_grid=settings.lambda_grid,
        hidden=(settings.hidden,),
        epochs=settings.epochs,
        patience=10,
        validation_fraction=validation,
        random_state=settings.random_state,
        verbose=settings.progress,
    )
    trainer.fit(
        rows.X, chosen, rows.quality, rows.cost, rows.propensity, rows.output_tokens
    )
    trainer.outcome_model_ = dr_learner_outcomes(rows.X, trainer)
    candidates = [
        Candidate(
            "dr-policy",
            trainer,
            f"MLP ({settings.hidden} hidden units) on DR pseudo-outcomes",
            {"best_epoch": int(trainer.best_epoch_), "rows": int(rows.X.shape[0])},
        )
    ]

    # NOTE: these targets use the trainer's shrunk DR weights, which trade a
    # small bias for variance; the promotion gate re-evaluates every
    # candidate with clipped (unbiased) weights on the held-out slice.
    targets = trainer.pseudo_outcomes_
    best = np.atleast_1d(
        best_constant_model(targets.quality, targets.cost, trainer.lambda_grid_)
    )
    choice = {f"{lam:g}": router_models[t] for lam, t in zip(trainer.lambda_grid_, best)}
    candidates.append(
        Candidate(
            "constant",
            _constant_policy(trainer, best),
            "the model with the best DR value on the training slice, per grid λ",
            {"model_per_lambda": choice},
        )
    )
    candidates.append(
        Candidate(
            "dr-learner",
            _dr_learner_policy(trainer),
            "argmax of the DR-learner's predicted utility",
            {},
        )
    )
    return candidates


def _linear_policy(source: RouterTrainer, weight: np.ndarray, bias: np.ndarray):
    """Return a fitted one-layer RouterTrainer that shares ``source``'s outcome model."""
    policy = RouterTrainer(
        models=source.models_, lambda_grid=source.lambda_grid_, hidden=()
    )
    policy.models_ = list(source.models_)
    policy.lambda_grid_ = source.lambda_grid_
    policy.n_features_in_ = source.n_features_in_
    policy.feature_mean_ = source.feature_mean_
    policy.feature_scale_ = source.feature_scale_
    policy.params_ = [weight.astype(np.float32), bias.astype(np.float32)]
    policy.utility_scale_ = 1.0
    policy.best_epoch_ = 0
    policy.validation_value_ = None
    policy.history_ = []
    policy.outcome_model_ = source.outcome_model_
    policy.pseudo_outcomes_ = None
    policy.proba_temperature_ = 1.0
    policy.training_data_fingerprint_ = source.training_data_fingerprint_
    policy.propensity_source_ = source.propensity_source_
    return policy


def _constant_policy(source: RouterTrainer, best: np.ndarray) -> RouterTrainer:
    heads, count = source.lambda_grid_.size, len(source.models_)
    bias = np.zeros((heads, count))
    bias[np.arange(heads), best] = CONSTANT_LOGIT
    weight = np.zeros((source.n_features_in_, heads * count))
    return _linear_policy(source, weight, bias.reshape(-1))


def dr_learner_outcomes(X: np.ndarray, trainer: RouterTrainer) -> OutcomeModel:
    """Return the trainer's outcome model with quality and cost refitted as a DR-learner.

    Each model's quality and cost are ridge regressions of the DR pseudo-outcomes
    ``A(t)`` and ``C(t)`` on all training rows, instead of regressions on the
    rows that model served. The served rows follow the logging policy, so the
    plain regression is confounded by it. The client reads this quality output
    for its cost-quality frontier, so it must not contradict the policy.
    """
    outcome = trainer.outcome_model_
    targets = trainer.pseudo_outcomes_
    Z = add_intercept(outcome.standardizer.transform(X)).astype(np.float64)
    penalty = DR_LEARNER_ALPHA * np.eye(Z.shape[1])
    penalty[0, 0] = 0.0
    gram = Z.T @ Z + penalty
    quality = np.linalg.solve(gram, Z.T @ targets.quality).astype(np.float32)
    cost = np.linalg.solve(gram, Z.T @ targets.cost).astype(np.float32)
    return OutcomeModel(outcome.standardizer, quality, cost, outcome.tokens_coef)


def _dr_learner_policy(source: RouterTrainer) -> RouterTrainer:
    outcome = source.outcome_model_
    grid = source.lambda_grid_
    # Head k is quality - λ_k cost, linear in the standardised features.
    # Both models act on the same standardiser as the policy (RouterTrainer
    # standardises with the outcome model's statistics).
    quality = outcome.quality_coef.astype(np.float64)
    cost = outcome.cost_coef.astype(np.float64)
    heads = quality[None] - grid[:, None, None] * cost[None]  # (M, d + 1, K)
    # Dividing head k by 1 + λ_k * mean cost keeps its logits near unit size at
    # large λ, where the utility reaches -λ times the cost. The argmax at each
    # grid λ is unchanged.
    mean_cost = float(np.mean(source.pseudo_outcomes_.cost))
    heads = heads / (1.0 + grid * max(mean_cost, 0.0))[:, None, None]
    weight = heads[:, 1:, :].transpose(1, 0, 2).reshape(source.n_features_in_, -1)
    bias = heads[:, 0, :].reshape(-1)
    policy = _linear_policy(source, weight, bias)
    policy.proba_temperature_ = 1.0 / DR_LEARNER_SHARPNESS
    return policy


def export_candidate(
    candidate: Candidate, directory: Path, metadata: dict, manifest_extra: dict
) -> None:
    """Export a candidate and add the retrain keys to its router.json.

    Raises RuntimeError when the ONNX graph does not reproduce the numpy policy.
    """
    candidate.policy.export(directory, metadata=metadata)
    path = directory / "router.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["policy"]["kind"] = candidate.name
    manifest["policy"]["description"] = candidate.description
    manifest.update(manifest_extra)
    path.write_text(json.dumps(manifest, indent=2, allow_nan=False) + "\n", encoding="utf-8")
