"""Time RouterTrainer.fit on synthetic logs and print wall time and peak RSS.

Default workload: 50,000 logged rows of 384-d float32 features and 8 models,
logged propensities given. Example:

    python benchmarks/train.py
    python benchmarks/train.py --estimate-propensity --blas-threads 1
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000, help="logged rows")
    parser.add_argument("--dim", type=int, default=384, help="feature dimension")
    parser.add_argument("--models", type=int, default=8, help="number of models")
    parser.add_argument("--epochs", type=int, default=100, help="maximum epochs")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--estimate-propensity",
        action="store_true",
        help="drop the logged propensities so fit estimates them",
    )
    parser.add_argument(
        "--blas-threads",
        type=int,
        default=None,
        help="set OPENBLAS_NUM_THREADS and OMP_NUM_THREADS before importing numpy",
    )
    return parser.parse_args()


def simulate(rows, dim, n_models, seed):
    """Return synthetic logs: features, served model, propensity, quality, cost."""
    import numpy as np

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, dim), dtype=np.float32)
    directions = rng.standard_normal((dim, n_models)) / np.sqrt(dim)
    skill = np.linspace(0.4, 0.9, n_models)
    quality_mean = np.clip(skill + 0.15 * np.tanh(X @ directions), 0.0, 1.0)
    price = np.geomspace(1e-5, 1e-1, n_models)
    cost_mean = price * np.exp(0.3 * (X[:, :1] @ np.ones((1, n_models))))

    # Logging policy biased towards cheap models, with 10% uniform exploration.
    scores = -np.log(price)[None, :] / 3.0 + X[:, 1:2]
    probs = np.exp(scores - scores.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    probs = 0.9 * probs + 0.1 / n_models
    chosen = (rng.random(rows)[:, None] > probs.cumsum(axis=1)).sum(axis=1)
    chosen = np.minimum(chosen, n_models - 1)
    index = np.arange(rows)
    quality = (rng.random(rows) < quality_mean[index, chosen]).astype(np.float64)
    cost = cost_mean[index, chosen] * rng.lognormal(0.0, 0.2, rows)
    return X, chosen, probs[index, chosen], quality, cost


def main() -> None:
    args = parse_args()
    if args.blas_threads is not None:
        os.environ["OPENBLAS_NUM_THREADS"] = str(args.blas_threads)
        os.environ["OMP_NUM_THREADS"] = str(args.blas_threads)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from trainer import RouterTrainer

    X, chosen, propensity, quality, cost = simulate(
        args.rows, args.dim, args.models, args.seed
    )
    if args.estimate_propensity:
        propensity = None
    models = [f"model-{i}" for i in range(args.models)]
    trainer = RouterTrainer(models, epochs=args.epochs, random_state=args.seed)

    start = time.perf_counter()
    trainer.fit(X, chosen, quality, cost, propensity=propensity)
    wall = time.perf_counter() - start

    # ru_maxrss is in KiB on Linux and in bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_mib = peak / 2**20 if sys.platform == "darwin" else peak / 2**10
    print(
        f"rows={args.rows} dim={args.dim} models={args.models} "
        f"propensity={'estimated' if args.estimate_propensity else 'logged'} "
        f"blas_threads={os.environ.get('OPENBLAS_NUM_THREADS', 'default')}"
    )
    print(f"epochs run: {len(trainer.history_)} (best {trainer.best_epoch_})")
    print(f"fit wall time: {wall:.1f} s")
    print(f"peak RSS: {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
