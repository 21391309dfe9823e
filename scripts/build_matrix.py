"""Build data/routing_matrix from the published ZeroEval and MMLU-Pro results.

    python scripts/build_matrix.py --data-dir DATA --out data/routing_matrix

DATA must contain ``zeroeval/result_dirs/`` and ``mmlu-pro/eval_results/`` in
their upstream layouts. Needs litellm (prices), tokenizers and onnxruntime
(the bundled embedder). Embedding about 16k prompts takes a few minutes on a
laptop CPU; ``--reuse-embeddings`` skips prompts whose id and text are unchanged.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from trainer.matrix.build import build_matrix


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        required=True,
        help="folder that contains zeroeval/ and mmlu-pro/ with the raw results",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "data" / "routing_matrix",
        help="output folder (default: data/routing_matrix in the repository)",
    )
    parser.add_argument(
        "--reuse-embeddings",
        action="store_true",
        help="copy embeddings from the existing output for prompts whose id and "
        "text are unchanged instead of recomputing them",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )

    # The data folder is machine-specific, so provenance records a placeholder.
    command = (
        "python scripts/build_matrix.py --data-dir <data-dir> --out "
        + shlex.quote(_relative(args.out))
    )
    provenance = build_matrix(
        args.data_dir,
        args.out,
        build_command=command,
        reuse_embeddings=args.reuse_embeddings,
    )
    _print_summary(provenance)
    return 0


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def _print_summary(provenance: dict) -> None:
    print("\nGrader accuracy against the published figure (points):")
    print(
        f"{'source':18} {'model':58} {'n':>6} {'grader':>7} {'upstream':>8} {'diff':>6}"
    )
    for row in provenance["grader_agreement"]:
        upstream = row["upstream_accuracy"]
        difference = row["difference"]
        print(
            f"{row['source']:18} {row['model_id']:58} {row['n']:6d} "
            f"{row['grader_accuracy']:7.2f} "
            f"{'-' if upstream is None else f'{upstream:.2f}':>8} "
            f"{'-' if difference is None else f'{difference:+.2f}':>6}"
        )
    print(f"\n{provenance['n_prompts']} prompts x {len(provenance['models'])} models")
    for model_id, details in provenance["model_details"].items():
        pool = "pool" if details["in_default_pool"] else "    "
        print(
            f"{pool} {model_id:58} n={details['n_prompts']:6d} "
            f"acc={details['accuracy']:.3f} "
            f"mean cost=${details['mean_cost_usd']:.6f}"
        )


if __name__ == "__main__":
    raise SystemExit(main())
