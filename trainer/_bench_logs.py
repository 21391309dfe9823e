"""Simulated observational logs drawn from a full-feedback table.

The logging policy is ``π0(t | x) = (1 - ε) softmax(β s(x))_t + ε / K_x`` over
the K_x models that have a result for prompt x. Its score

    s_t(x) = -z_t + u_t · x̃

favours cheap models: ``z_t`` is the standardised log mean cost of model t on
the training prompts, and ``u_t · x̃`` is a random linear function of the
standardised features with unit variance, so the bias also depends on the
prompt. β sets the strength of the bias and ε the share of uniform exploration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LoggedCalls:
    """One logged call per row: prompt index, served model, outcome, propensity."""

    prompt: np.ndarray  # (n,) index into the training prompts
    chosen: np.ndarray  # (n,) model index
    quality: np.ndarray  # (n,)
    cost: np.ndarray  # (n,) USD
    propensity: np.ndarray  # (n,) π0(chosen | x)


def logging_probabilities(features, cost, available, beta, epsilon, rng):
    """Return π0 (n, K) for the training prompts; zero where a model is missing."""
    n_models = cost.shape[1]
    mean_cost = np.array([np.nanmean(cost[:, t]) for t in range(n_models)])
    log_cost = np.log(np.maximum(mean_cost, 1e-12))
    cheapness = -(log_cost - log_cost.mean()) / max(log_cost.std(), 1e-12)

    scale = features.std(axis=0)
    scale[scale < 1e-12] = 1.0
    standardized = (features - features.mean(axis=0)) / scale
    directions = rng.normal(0.0, 1.0, (features.shape[1], n_models))
    prompt_term = standardized @ directions / np.sqrt(features.shape[1])

    scores = beta * (cheapness[None, :] + prompt_term)
    scores = np.where(available, scores, -np.inf)
    scores -= scores.max(axis=1, keepdims=True)
    softmax = np.exp(scores)
    softmax /= softmax.sum(axis=1, keepdims=True)
    uniform = available / available.sum(axis=1, keepdims=True)
    return (1.0 - epsilon) * softmax + epsilon * uniform


def draw_logs(probabilities, quality, cost, n_rows, rng):
    """Draw ``n_rows`` logged calls, cycling through shuffled training prompts.

    With ``n_rows`` above the number of prompts every prompt is logged several
    times, each time with an independent draw of the served model.
    """
    n_prompts = probabilities.shape[0]
    repeats = -(-n_rows // n_prompts)
    prompt = np.concatenate([rng.permutation(n_prompts) for _ in range(repeats)])[:n_rows]
    cumulative = probabilities[prompt].cumsum(axis=1)
    draws = rng.random((n_rows, 1))
    chosen = (draws > cumulative).sum(axis=1)
    # A draw above the rounded-down row sum falls past the last column.
    overflow = chosen >= probabilities.shape[1]
    chosen[overflow] = probabilities[prompt[overflow]].argmax(axis=1)
    return LoggedCalls(
        prompt=prompt,
        chosen=chosen,
        quality=quality[prompt, chosen],
        cost=cost[prompt, chosen],
        propensity=probabilities[prompt, chosen],
    )
