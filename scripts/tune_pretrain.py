"""Compare trainer settings for the bundled router on a validation split.

    python scripts/tune_pretrain.py

Only the training prompts of ``trainer.pretrain`` are used: one in five of
them, by a second hash of the id, is the validation set. The held-out test
prompts are never read here, so picking settings by this table does not
leak into the test regret that ``router.json`` reports.
"""

from __future__ import annotations

import hashlib
import itertools
import sys

import numpy as np

from trainer import RouterTrainer
from trainer.matrix import load_matrix
from trainer.pretrain import evaluate_policy, matrix_features, pick_best_single, split_by_id

CONFIGS = [
    {},
    {"hidden": (128,), "l2": 1e-3},
    {"hidden": (64,), "patience": 30, "batch_size": 64, "lr": 1e-3},
    {"hidden": (128,), "patience": 30, "batch_size": 64, "lr": 1e-3, "l2": 1e-3},
    {"hidden": (256,), "patience": 30, "batch_size": 128, "lr": 1e-3, "l2": 1e-3},
    {"hidden": (128, 64), "patience": 30, "batch_size": 64, "lr": 1e-3, "l2": 1e-3},
    {"hidden": (128,), "patience": 30, "batch_size": 64, "lr": 1e-3, "l2": 1e-3, "tau": 0.3},
]


def main() -> int:
    matrix = load_matrix()
    matrix = matrix.select_models(matrix.default_pool)
    features = matrix_features(matrix)
    train = split_by_id(matrix.ids).train
    salted = np.array(
        [int(hashlib.sha256(f"val/{i}".encode()).hexdigest()[:8], 16) % 100 for i in matrix.ids[train]]
    )
    fit_rows, val_rows = train[salted >= 20], train[salted < 20]
    val_rows = val_rows[~np.isnan(matrix.quality[val_rows]).any(axis=1)]
    selected = [int(a) for a in sys.argv[1:]] or range(len(CONFIGS))
    for index in selected:
        config = CONFIGS[index]
        trainer = RouterTrainer(models=matrix.models, random_state=0, epochs=200, **config)
        trainer.fit_full(features[fit_rows], matrix.quality[fit_rows], matrix.cost[fit_rows])
        lambdas = [float(v) for v in trainer.lambda_grid_]
        best = pick_best_single(matrix.quality[fit_rows], matrix.cost[fit_rows], lambdas)
        chosen = {lam: trainer.predict(features[val_rows], lam) for lam in lambdas}
        report = evaluate_policy(chosen, matrix.quality[val_rows], matrix.cost[val_rows], best)
        closed = " ".join(f"{g:+.3f}" for g in report["gap_closed"])
        print(f"{index} {config} best_epoch={trainer.best_epoch_} gap_closed: {closed}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
