"""Benchmark loop: splits, simulated logs, method fits and test regret."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from ._bench_logs import draw_logs, logging_probabilities
from ._bench_methods import Problem

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    """What one benchmark run covers and how large its networks are."""

    lambdas: tuple[float, ...]
    seeds: tuple[int, ...]
    logging_configs: tuple[tuple[float, float], ...]  # (β, ε) pairs
    curve_sizes: tuple[int, ...]
    curve_config: tuple[float, float]
    curve_methods: tuple[str, ...]
    network: dict
    max_train_prompts: int | None = None
    max_test_prompts: int | None = None
    test_share: float = 0.3
    # When set, regret is measured on this share of the training prompts and
    # the test prompts are never read, so that options can be chosen without
    # looking at the test split.
    validation_share: float | None = None


def split_prompts(dataset, seed, test_share):
    """Return train and test row indices: the dataset's split or a stratified one.

    Test rows must have every model's result, so that regret is exact.
    """
    complete = ~np.isnan(dataset.quality).any(axis=1)
    if dataset.split is not None:
        train = np.flatnonzero(dataset.split == "train")
        test = np.flatnonzero((dataset.split == "test") & complete)
        return train, test
    rng = np.random.default_rng(10_000 + seed)
    train, test = [], []
    for group in np.unique(dataset.groups):
        rows = rng.permutation(np.flatnonzero(dataset.groups == group))
        n_test = int(round(test_share * rows.size))
        test.append(rows[:n_test])
        train.append(rows[n_test:])
    train, test = np.concatenate(train), np.concatenate(test)
    return np.sort(train), np.sort(test[complete[test]])


def evaluate(probs, quality, cost, lambdas):
    """Return test regret, utility, quality and cost of a policy, each (L,)."""
    lambdas = np.asarray(lambdas)
    utility = quality[None] - lambdas[:, None, None] * cost[None]
    oracle = utility.max(axis=2).mean(axis=1)
    value = (probs * utility).sum(axis=2).mean(axis=1)
    return {
        "regret": oracle - value,
        "utility": value,
        "quality": (probs * quality[None]).sum(axis=2).mean(axis=1),
        "cost": (probs * cost[None]).sum(axis=2).mean(axis=1),
    }


def split_validation(dataset, train, share, seed):
    """Split training rows into fit rows and complete validation rows."""
    rng = np.random.default_rng(20_000 + seed)
    order = rng.permutation(train.size)
    n_validation = int(round(share * train.size))
    validation = np.sort(train[order[:n_validation]])
    fit = np.sort(train[order[n_validation:]])
    complete = ~np.isnan(dataset.quality[validation]).any(axis=1)
    return fit, validation[complete]


def _subsample(rows, limit, rng):
    if limit is None or rows.size <= limit:
        return rows
    return np.sort(rng.choice(rows, size=limit, replace=False))


def make_problem(dataset, train, test, probabilities, n_rows, network, settings, seed, rng):
    """Draw logs on the training prompts and return the benchmark ``Problem``."""
    quality, cost = dataset.quality[train], dataset.cost[train]
    logs = draw_logs(probabilities, quality, cost, n_rows, rng)
    return Problem(
        models=dataset.models,
        grid=np.asarray(settings.lambdas, dtype=np.float64),
        train_features=dataset.features[train],
        train_quality=quality,
        train_cost=cost,
        test_features=dataset.features[test],
        log_prompt=logs.prompt,
        log_chosen=logs.chosen,
        log_quality=logs.quality,
        log_cost=logs.cost,
        log_propensity=logs.propensity,
        seed=seed,
        network=network,
    )


def _run_methods(problem, methods, quality, cost, lambdas, timings):
    scores = {}
    for name, method in methods.items():
        start = time.perf_counter()
        probs = method(problem)
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start
        scores[name] = evaluate(probs, quality, cost, lambdas)
    oracle = np.eye(quality.shape[1])[
        (quality[None] - np.asarray(lambdas)[:, None, None] * cost[None]).argmax(axis=2)
    ]
    scores["oracle"] = evaluate(oracle, quality, cost, lambdas)
    return scores


def _curve_network(network, n_rows):
    # Constant steps per epoch across log sizes, so patience means the same.
    settings = dict(network)
    settings["batch_size"] = max(int(network.get("batch_size", 64)), n_rows // 35)
    return settings


def run_seed(dataset, settings, methods, seed):
    """Run every method on every logging config for one seed, then the learning curve.

    Returns ``{"cells": [...], "curve": [...], "timings": {...}, "sizes": {...}}``.
    Each cell records seed, β, ε, the number of logged rows, the logged calls per
    model and the scores of every method.
    """
    cells, curve, timings = [], [], {}
    rng = np.random.default_rng(seed)
    train, test = split_prompts(dataset, seed, settings.test_share)
    train = _subsample(train, settings.max_train_prompts, rng)
    if settings.validation_share is not None:
        train, test = split_validation(dataset, train, settings.validation_share, seed)
    test = _subsample(test, settings.max_test_prompts, rng)
    sizes = {"train_prompts": int(train.size), "test_prompts": int(test.size)}
    quality, cost = dataset.quality[test], dataset.cost[test]
    available = ~np.isnan(dataset.quality[train])

    def probabilities_for(beta, epsilon):
        config_rng = np.random.default_rng([seed, int(beta * 100), int(epsilon * 100)])
        probabilities = logging_probabilities(
            dataset.features[train], dataset.cost[train], available, beta, epsilon,
            config_rng,
        )
        return probabilities, config_rng

    for beta, epsilon in settings.logging_configs:
        probabilities, config_rng = probabilities_for(beta, epsilon)
        problem = make_problem(
            dataset, train, test, probabilities, train.size, settings.network, settings,
            seed, config_rng,
        )
        scores = _run_methods(problem, methods, quality, cost, settings.lambdas, timings)
        cells.append(_cell(seed, beta, epsilon, problem, scores))
        logger.info(
            "%s seed %d beta %g epsilon %g: mean regret over λ dr_softmax %.4f, "
            "direct_method %.4f",
            dataset.name, seed, beta, epsilon,
            scores.get("dr_softmax", scores["oracle"])["regret"].mean(),
            scores.get("direct_method", scores["oracle"])["regret"].mean(),
        )

    beta, epsilon = settings.curve_config
    probabilities, _ = probabilities_for(beta, epsilon)
    curve_methods = {name: methods[name] for name in settings.curve_methods}
    for n_rows in settings.curve_sizes:
        problem = make_problem(
            dataset, train, test, probabilities, n_rows,
            _curve_network(settings.network, n_rows), settings, seed,
            np.random.default_rng([seed, n_rows, 7]),
        )
        scores = _run_methods(problem, curve_methods, quality, cost, settings.lambdas, timings)
        curve.append(_cell(seed, beta, epsilon, problem, scores))
        logger.info("%s seed %d: learning curve at %d rows done", dataset.name, seed, n_rows)
    return {"cells": cells, "curve": curve, "timings": timings, "sizes": sizes}


def _cell(seed, beta, epsilon, problem, scores):
    counts = np.bincount(problem.log_chosen, minlength=len(problem.models))
    return {
        "seed": seed,
        "beta": beta,
        "epsilon": epsilon,
        "n_rows": int(problem.log_chosen.size),
        "calls_per_model": counts.tolist(),
        "scores": scores,
    }
