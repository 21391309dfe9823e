"""Datasets of the routing benchmark, loaded from files committed in ``data/``.

Two full-feedback tables (every prompt x every model) are available:

- ``routerbench``: the RouterBench 0-shot subset redistributed by RouterDC (ARC
  Challenge, MBPP, Winogrande; 11 models; 0/1 quality and real USD cost per
  call), built by ``scripts/build_routerbench.py`` into ``data/routerbench``.
  It keeps RouterDC's train/test split.
- ``zeroeval_mmlupro``: the routing matrix of ``trainer.matrix`` (ZeroEval
  GSM8K, MATH level 5 and CRUXEval plus MMLU-Pro; cost derived from token
  counts and list prices), restricted to the shipped router's default pool.
  It has no published split, so the benchmark splits it per seed.

Both expose router features (the 384-d embedding plus the 8 shape features of
``smartllm._features``), quality in [0, 1] with NaN for a missing entry and
cost in USD with NaN exactly where quality is NaN.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "DEFAULT_ROUTERBENCH_DIR",
    "BenchmarkDataset",
    "load_routerbench",
    "load_zeroeval_mmlupro",
]

DEFAULT_ROUTERBENCH_DIR = Path(__file__).resolve().parents[1] / "data" / "routerbench"


@dataclass(frozen=True)
class BenchmarkDataset:
    """A prompts x models table with router features and an optional fixed split.

    ``split`` is None when the source has no train/test split, otherwise an
    (n,) array of ``"train"`` or ``"test"``. ``groups`` is the source task of
    each prompt (used to stratify a random split).
    """

    name: str
    features: np.ndarray  # (n, 392) float32
    quality: np.ndarray  # (n, K) float64 in [0, 1], NaN where missing
    cost: np.ndarray  # (n, K) float64 USD, NaN where missing
    models: list[str]
    groups: np.ndarray  # (n,) str
    ids: np.ndarray  # (n,) str
    split: np.ndarray | None

    def __len__(self) -> int:
        return self.features.shape[0]


def load_routerbench(path: str | Path | None = None) -> BenchmarkDataset:
    """Load ``data/routerbench`` (or ``path``) as a :class:`BenchmarkDataset`."""
    folder = Path(path) if path is not None else DEFAULT_ROUTERBENCH_DIR
    npz_path = folder / "routerbench.npz"
    if not npz_path.is_file():
        raise FileNotFoundError(
            f"RouterBench subset not found: {npz_path} is missing; build it with "
            "scripts/build_routerbench.py --data-dir DIR --out data/routerbench"
        )
    with np.load(npz_path, allow_pickle=False) as arrays:
        data = {key: arrays[key] for key in arrays.files}
    provenance = json.loads((folder / "provenance.json").read_text(encoding="utf-8"))
    if provenance["models"] != list(data["models"]):
        raise ValueError(
            f"{npz_path} model columns do not match provenance.json; rebuild the "
            "folder with scripts/build_routerbench.py"
        )

    quality = data["quality"].astype(np.float64)
    quality[data["quality"] < 0] = np.nan
    cost = np.where(np.isnan(quality), np.nan, data["cost"])
    features = np.hstack(
        [data["embeddings"].astype(np.float32), data["shape_features"].astype(np.float32)]
    )
    return BenchmarkDataset(
        name="routerbench",
        features=features,
        quality=quality,
        cost=cost,
        models=[str(m) for m in data["models"]],
        groups=data["eval_name"],
        ids=data["sample_id"],
        split=data["split"],
    )


def load_zeroeval_mmlupro(
    path: str | Path | None = None, min_coverage: float = 0.95
) -> BenchmarkDataset:
    """Load the routing matrix restricted to its default pool.

    Models of the default pool that have results for less than ``min_coverage``
    of the prompts are dropped, and so are prompts left with no result at all.
    """
    from smartllm._features import router_features

    from .matrix import load_matrix

    matrix = load_matrix(path)
    pool = list(matrix.default_pool) or list(matrix.models)
    matrix = matrix.select_models(pool)
    coverage = (~np.isnan(matrix.quality)).mean(axis=0)
    kept_models = [m for m, share in zip(pool, coverage) if share >= min_coverage]
    if len(kept_models) < 2:
        raise ValueError(
            f"only {kept_models} of the default pool {pool} cover at least "
            f"{min_coverage:.0%} of the prompts; lower min_coverage"
        )
    matrix = matrix.select_models(kept_models)
    rows = np.flatnonzero((~np.isnan(matrix.quality)).any(axis=1))
    features = router_features(
        matrix.embeddings[rows],
        [matrix.texts[i] for i in rows],
        matrix.input_tokens[rows],
    )
    return BenchmarkDataset(
        name="zeroeval_mmlupro",
        features=features,
        quality=matrix.quality[rows],
        cost=matrix.cost[rows],
        models=list(kept_models),
        groups=np.array([str(t).split(":")[0] for t in matrix.tasks[rows]]),
        ids=matrix.ids[rows],
        split=None,
    )
