"""Train the router that ships in ``smartllm/assets`` from the routing matrix.

    python -m trainer.pretrain                      # rewrite the bundled router
    python -m trainer.pretrain --out /tmp/router    # write elsewhere

The matrix in ``data/routing_matrix`` records every pool model's graded
answer to every prompt, so the policy is fitted on full feedback. One prompt
in five, chosen by a hash of its id, is held out. The test regret per λ
against the oracle, the best single model and random choice goes into
``router.json`` and is printed as a table. The run is deterministic: the
same matrix and options give byte-identical files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smartllm._embedder import Embedder
from smartllm._features import FEATURE_SET, router_features

from ._ensemble import merge_ensemble
from ._estimator import RouterTrainer
from .matrix import RoutingMatrix, load_matrix

logger = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parents[1] / "smartllm" / "assets"
TEST_PERCENT = 20
# Chosen on a validation split of the training prompts with
# scripts/tune_pretrain.py; the test prompts played no part.
TRAINER_SETTINGS = {"hidden": (128,), "l2": 1e-3}
# Networks from this many seeds are averaged into the shipped policy. On the
# same validation split, five seeds closed more of the gap at every λ up to
# 100 than the median single seed.
ENSEMBLE_SIZE = 5


@dataclass(frozen=True)
class Split:
    """Row indices of the train and test prompts."""

    train: np.ndarray
    test: np.ndarray


def split_by_id(ids: np.ndarray, test_percent: int = TEST_PERCENT) -> Split:
    """Hold out about ``test_percent`` % of prompts, chosen by a hash of the id."""
    buckets = np.array(
        [int(hashlib.sha256(str(i).encode()).hexdigest()[:8], 16) % 100 for i in ids]
    )
    test = buckets < test_percent
    return Split(train=np.flatnonzero(~test), test=np.flatnonzero(test))


def matrix_features(matrix: RoutingMatrix) -> np.ndarray:
    """Return the router features of every matrix prompt: (n, 392) float32."""
    return router_features(matrix.embeddings, matrix.texts, matrix.input_tokens)


def evaluate_policy(
    chosen_by_lambda: dict[float, np.ndarray],
    quality: np.ndarray,
    cost: np.ndarray,
    best_single: dict[float, int],
) -> dict[str, list[float]]:
    """Compare a policy with the oracle, the best single model and random choice.

    ``quality`` and ``cost`` are complete (n, K) test tables. Utility is
    quality minus λ times cost; regret is the oracle's utility minus the
    policy's, averaged over prompts; the gap closed is
    ``(U_policy - U_best) / (U_oracle - U_best)``.
    """
    rows = np.arange(quality.shape[0])
    report: dict[str, list[float]] = {
        key: []
        for key in (
            "lambda", "regret", "regret_best_single", "regret_random",
            "gap_closed", "quality", "cost", "best_single_model_index",
        )
    }
    for lam, chosen in chosen_by_lambda.items():
        utility = quality - lam * cost
        oracle = utility.max(axis=1).mean()
        policy = utility[rows, chosen].mean()
        best = utility[:, best_single[lam]].mean()
        random = utility.mean()
        gap = oracle - best
        report["lambda"].append(float(lam))
        report["regret"].append(float(oracle - policy))
        report["regret_best_single"].append(float(oracle - best))
        report["regret_random"].append(float(oracle - random))
        report["gap_closed"].append(float((policy - best) / gap) if gap > 0 else 0.0)
        report["quality"].append(float(quality[rows, chosen].mean()))
        report["cost"].append(float(cost[rows, chosen].mean()))
        report["best_single_model_index"].append(int(best_single[lam]))
    return report


def pick_best_single(quality: np.ndarray, cost: np.ndarray, lambdas) -> dict[float, int]:
    """Return, per λ, the model with the highest mean utility on the given rows."""
    return {
        float(lam): int(np.nanmean(quality - lam * cost, axis=0).argmax())
        for lam in lambdas
    }


def price_table(matrix: RoutingMatrix) -> dict:
    """Return the router.json price table for the matrix's models."""
    per_model = {}
    sources = set()
    for model in matrix.models:
        entry = matrix.prices[model]
        per_model[model] = {
            "input_per_token": float(entry["input_cost_per_token"]),
            "output_per_token": float(entry["output_cost_per_token"]),
            "source": entry.get("source", ""),
        }
        sources.add(entry.get("source", ""))
    return {
        "source": "; ".join(sorted(s for s in sources if s)),
        "date": _price_date(matrix),
        "per_model": per_model,
    }


def _price_date(matrix: RoutingMatrix) -> str:
    dates = sorted(
        {str(matrix.prices[m].get("date", "")) for m in matrix.models} - {""}
    )
    return ", ".join(dates)


def pretrain(
    matrix_dir: Path | None,
    out_dir: Path,
    random_state: int = 0,
    epochs: int = 200,
) -> dict:
    """Fit the pool's router on the matrix, export it and return its test metrics."""
    matrix = load_matrix(matrix_dir)
    matrix = matrix.select_models(matrix.default_pool)
    features = matrix_features(matrix)
    split = split_by_id(matrix.ids)
    models = matrix.models

    members = []
    for offset in range(ENSEMBLE_SIZE):
        member = RouterTrainer(
            models=models,
            random_state=random_state + offset,
            epochs=epochs,
            **TRAINER_SETTINGS,
        )
        member.fit_full(
            features[split.train],
            matrix.quality[split.train],
            matrix.cost[split.train],
            output_tokens_matrix=_tokens_with_nan(matrix.output_tokens[split.train]),
        )
        members.append(member)
    trainer = merge_ensemble(members)

    complete = split.test[~np.isnan(matrix.quality[split.test]).any(axis=1)]
    lambdas = [float(v) for v in trainer.lambda_grid_]
    best_single = pick_best_single(
        matrix.quality[split.train], matrix.cost[split.train], lambdas
    )
    chosen = {lam: trainer.predict(features[complete], lam) for lam in lambdas}
    report = evaluate_policy(
        chosen, matrix.quality[complete], matrix.cost[complete], best_single
    )
    report["n_train"] = int(split.train.size)
    report["n_test"] = int(complete.size)
    report["models"] = models

    metadata = {
        "embedder_sha256": Embedder().sha256,
        "features": FEATURE_SET,
        "prices": price_table(matrix),
        "metrics": {
            "test": report,
            "split": f"sha256(id) % 100 < {TEST_PERCENT}",
            "ensemble_size": ENSEMBLE_SIZE,
        },
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    trainer.export(out_dir, metadata=metadata)
    return report


def _tokens_with_nan(tokens: np.ndarray) -> np.ndarray:
    values = tokens.astype(np.float64)
    values[tokens < 0] = np.nan
    return values


def format_report(report: dict) -> str:
    """Render the test metrics as a markdown table."""
    models = report["models"]
    lines = [
        "| λ (quality/USD) | regret | best single | random | gap closed | "
        "quality | cost (USD) | best single model |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, lam in enumerate(report["lambda"]):
        lines.append(
            f"| {lam:g} | {report['regret'][i]:.4f} | "
            f"{report['regret_best_single'][i]:.4f} | {report['regret_random'][i]:.4f} | "
            f"{report['gap_closed'][i]:+.3f} | {report['quality'][i]:.3f} | "
            f"{report['cost'][i]:.5f} | {models[report['best_single_model_index'][i]]} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Train the bundled smartllm router.")
    parser.add_argument("--matrix", type=Path, default=None, help="routing matrix folder")
    parser.add_argument("--out", type=Path, default=ASSETS, help="output folder")
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=200, help="maximum epochs")
    parser.add_argument("--json", action="store_true", help="print metrics as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    report = pretrain(args.matrix, args.out, args.random_state, args.epochs)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"train prompts {report['n_train']}, test prompts {report['n_test']}")
        print(format_report(report))
        print(f"wrote {args.out / 'router.onnx'} and {args.out / 'router.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
