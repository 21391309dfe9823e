"""Offline trainer for smartllm routers (the ``smartllm[trainer]`` extra).

Learns a routing policy for every cost sensitivity λ (quality points per USD)
from logged calls with doubly robust targets, evaluates policies off-policy and
exports the router as ONNX plus a JSON description. Needs numpy, onnx,
onnxruntime and tqdm: ``pip install 'smartllm[trainer]'``.
"""

from ._baselines import DirectMethodRouter, constant_policy
from ._dr import (
    PolicyValue,
    best_constant_model,
    dr_pseudo_outcomes,
    dr_value,
    dr_value_difference,
    dr_weights,
    ipw_pseudo_outcomes,
    utility,
)
from ._estimator import RouterTrainer, fingerprint_arrays
from ._export import export_router
from ._targets import (
    OutcomeModel,
    PseudoOutcomes,
    cross_fit_pseudo_outcomes,
    full_feedback_targets,
)
from ._validation import DEFAULT_LAMBDA_GRID, NotFittedError

__all__ = [
    "DEFAULT_LAMBDA_GRID",
    "DirectMethodRouter",
    "NotFittedError",
    "OutcomeModel",
    "PolicyValue",
    "PseudoOutcomes",
    "RouterTrainer",
    "best_constant_model",
    "constant_policy",
    "cross_fit_pseudo_outcomes",
    "dr_pseudo_outcomes",
    "dr_value",
    "dr_value_difference",
    "dr_weights",
    "export_router",
    "fingerprint_arrays",
    "full_feedback_targets",
    "ipw_pseudo_outcomes",
    "utility",
]
