"""Routing matrix: prompts x models quality, tokens and cost from published results.

``load_matrix()`` reads the committed copy in ``data/routing_matrix`` and
needs neither the raw result files nor litellm. ``scripts/build_matrix.py``
rebuilds that copy from the raw files.
"""

from .dataset import DEFAULT_MATRIX_DIR, RoutingMatrix, compute_cost, load_matrix
from .sources import DEFAULT_POOL, MODELS, ModelSpec

__all__ = [
    "DEFAULT_MATRIX_DIR",
    "DEFAULT_POOL",
    "MODELS",
    "ModelSpec",
    "RoutingMatrix",
    "compute_cost",
    "load_matrix",
]
