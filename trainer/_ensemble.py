"""Average several fitted one-hidden-layer policies into one exportable policy.

Networks trained from different seeds disagree on prompts the data say
little about; averaging their logits lowers that variance. For one hidden
layer the average is itself such a network: the hidden units side by side,
the output weights divided by the number of members. So the merged policy
exports, predicts and interpolates over λ exactly like a single one.
"""

from __future__ import annotations

import copy

import numpy as np

from ._estimator import RouterTrainer
from ._validation import check_is_fitted


def merge_ensemble(members: list[RouterTrainer]) -> RouterTrainer:
    """Return one fitted RouterTrainer whose logits are the mean of the members'.

    Every member must be fitted on the same features (equal standardisation),
    models and λ grid, with one hidden layer. The quality and output-token
    heads, the outcome model and the training metadata are the first
    member's.
    """
    if not members:
        raise ValueError("members is empty; pass at least one fitted RouterTrainer.")
    for member in members:
        check_is_fitted(member, "params_", "merge_ensemble")
    first = members[0]
    for index, member in enumerate(members[1:], start=1):
        _check_compatible(first, member, index)

    count = len(members)
    merged = copy.deepcopy(first)
    merged.params_ = [
        np.hstack([m.params_[0] for m in members]),
        np.concatenate([m.params_[1] for m in members]),
        np.vstack([m.params_[2] for m in members]) / np.float32(count),
        np.mean([m.params_[3] for m in members], axis=0).astype(np.float32),
    ]
    merged.hidden = (sum(m.params_[0].shape[1] for m in members),)
    merged.ensemble_size_ = count
    return merged


def _check_compatible(first: RouterTrainer, member: RouterTrainer, index: int) -> None:
    if len(member.params_) != 4 or len(first.params_) != 4:
        raise ValueError(
            "merge_ensemble supports networks with exactly one hidden layer; "
            f"members[{index}] has {len(member.params_) // 2 - 1} hidden layers."
        )
    same = (
        member.models_ == first.models_
        and np.array_equal(member.lambda_grid_, first.lambda_grid_)
        and np.array_equal(member.feature_mean_, first.feature_mean_)
        and np.array_equal(member.feature_scale_, first.feature_scale_)
    )
    if not same:
        raise ValueError(
            f"members[{index}] was fitted on other models, λ grid or features than "
            "members[0]; fit every member on the same data."
        )
