"""Build the compact RouterBench subset that the routing benchmark loads.

Input: the RouterBench (0-shot) train/test CSVs as redistributed in the RouterDC
repository (github.com/shuhao02/RouterDC, ``datasets/routerbench_zs``): ARC
Challenge, MBPP and Winogrande, one row per prompt with the 0/1 score and the
USD cost of each of 11 models.

Output in ``--out``: ``routerbench.npz`` with the bundled embedder's embeddings
(float16), the 8 shape features of ``smartllm._features.shape_features``, the
quality and cost matrices, ``eval_name``, ``sample_id`` and the original
train/test split, plus ``provenance.json``. Prompt text and model responses are
not written because the upstream data states no licence.

Usage::

    python scripts/build_routerbench.py --data-dir DIR --out data/routerbench
"""

from __future__ import annotations

import argparse
import ast
import csv
import hashlib
import json
import logging
import sys
from pathlib import Path

import numpy as np

from smartllm._embedder import Embedder
from smartllm._features import FEATURE_NAMES, shape_features

logger = logging.getLogger("build_routerbench")

SOURCE_REPOSITORY = "https://github.com/shuhao02/RouterDC"
SOURCE_COMMIT = "0e63989c5bf4363330b8a4616386e3f7f116d9f8"
SOURCE_PATH = "datasets/routerbench_zs"
FILES = {
    "train": ("arc_challenge_train.csv", "mbpp_train.csv", "winograde_train.csv"),
    "test": ("arc_challenge_test.csv", "mbpp_test.csv", "winograde_test.csv"),
}
MODELS = (
    "gpt-4-1106-preview",
    "gpt-3.5-turbo-1106",
    "claude-v2",
    "claude-v1",
    "claude-instant-v1",
    "meta/llama-2-70b-chat",
    "mistralai/mixtral-8x7b-chat",
    "zero-one-ai/Yi-34B-Chat",
    "meta/code-llama-instruct-34b-chat",
    "mistralai/mistral-7b-chat",
    "WizardLM/WizardLM-13B-V1.2",
)


def parse_prompt(raw: str) -> str:
    """Return the prompt text from its stored form, the repr of a list of strings.

    Most rows hold one string. The 14 ARC rows that hold two are joined with a
    blank line.
    """
    value = ast.literal_eval(raw)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return "\n\n".join(value)
    raise ValueError(f"prompt is not a list of strings: {raw[:80]!r}")


def read_rows(data_dir: Path) -> tuple[list[dict], int]:
    """Read every CSV; return one record per unique sample_id and the rows skipped.

    A sample_id repeated within the data keeps its first row. A sample_id that
    occurs in both splits is kept in the test split only, so no test prompt is
    also a training prompt.
    """
    csv.field_size_limit(sys.maxsize)
    records: dict[str, dict] = {}
    duplicates = 0
    for split in ("test", "train"):
        for name in FILES[split]:
            path = data_dir / name
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path} not found; pass the folder that contains "
                    f"{', '.join(FILES['train'] + FILES['test'])} as --data-dir"
                )
            with path.open(newline="", encoding="utf-8") as handle:
                for row in csv.DictReader(handle):
                    sample_id = row["sample_id"]
                    if sample_id in records:
                        duplicates += 1
                        continue
                    records[sample_id] = {
                        "sample_id": sample_id,
                        "split": split,
                        "file": name,
                        "eval_name": row["eval_name"],
                        "text": parse_prompt(row["prompt"]),
                        "quality": [float(row[m]) if row[m] else np.nan for m in MODELS],
                        "cost": [float(row[f"{m}|total_cost"]) for m in MODELS],
                    }
    logger.info("read %d unique prompts, skipped %d repeated rows", len(records), duplicates)
    return list(records.values()), duplicates


def build_arrays(records: list[dict]) -> tuple[dict[str, np.ndarray], str]:
    """Embed the prompts; return the arrays for ``routerbench.npz`` and the embedder sha256."""
    texts = [r["text"] for r in records]
    embedder = Embedder()
    token_counts = embedder.count_tokens(texts)
    embeddings = np.concatenate(
        [embedder.embed(texts[start : start + 64]) for start in range(0, len(texts), 64)]
    )
    quality = np.array([r["quality"] for r in records])
    cost = np.array([r["cost"] for r in records])
    if not np.isin(quality[~np.isnan(quality)], (0.0, 1.0)).all():
        raise ValueError("quality contains values other than 0, 1 and missing")
    if not (np.isfinite(cost).all() and (cost >= 0).all()):
        raise ValueError("cost contains missing or negative values")
    return {
        "embeddings": embeddings.astype(np.float16),
        "shape_features": shape_features(texts, token_counts),
        "input_tokens": token_counts.astype(np.int32),
        # -1 marks a missing score: some ARC rows lack a model's result upstream.
        "quality": np.where(np.isnan(quality), -1, quality).astype(np.int8),
        "cost": cost,
        "models": np.array(MODELS),
        "sample_id": np.array([r["sample_id"] for r in records]),
        "eval_name": np.array([r["eval_name"] for r in records]),
        "split": np.array([r["split"] for r in records]),
    }, embedder.sha256


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        required=True,
        help="folder with the RouterDC routerbench_zs CSV files",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("data/routerbench"), help="output folder"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    records, duplicates = read_rows(args.data_dir)
    arrays, embedder_sha256 = build_arrays(records)
    args.out.mkdir(parents=True, exist_ok=True)
    npz_path = args.out / "routerbench.npz"
    np.savez_compressed(npz_path, **arrays)

    splits = arrays["split"]
    provenance = {
        "source": {
            "repository": SOURCE_REPOSITORY,
            "commit": SOURCE_COMMIT,
            "path": SOURCE_PATH,
            "files": {
                name: file_sha256(args.data_dir / name)
                for name in FILES["train"] + FILES["test"]
            },
            "original": "RouterBench 0-shot (Hu et al. 2024, withmartian/routerbench, "
            "routerbench_0shot.pkl), subset and split by RouterDC (Chen et al. 2024)",
        },
        "licence": "not stated: the RouterDC repository has no LICENSE file and the "
        "RouterBench dataset card states none. Only derived numbers are stored here "
        "(embeddings, shape features, scores, costs, ids), no prompt text or model "
        "responses. Treat as research use.",
        "build_command": "python scripts/build_routerbench.py --data-dir "
        "<RouterDC datasets/routerbench_zs> --out data/routerbench",
        "embedder_sha256": embedder_sha256,
        "feature_names": list(FEATURE_NAMES),
        "models": list(MODELS),
        "cost_unit": "USD per call, RouterBench's estimate from API prices "
        "(Together AI prices for open models)",
        "quality_encoding": "int8: 1 correct, 0 wrong, -1 missing upstream",
        "missing_scores": int((arrays["quality"] < 0).sum()),
        "rows_with_missing_scores": int((arrays["quality"] < 0).any(axis=1).sum()),
        "rows": int(splits.size),
        "train_rows": int((splits == "train").sum()),
        "test_rows": int((splits == "test").sum()),
        "repeated_rows_dropped": duplicates,
        "npz_sha256": file_sha256(npz_path),
    }
    (args.out / "provenance.json").write_text(
        json.dumps(provenance, indent=2) + "\n", encoding="utf-8"
    )
    logger.info("wrote %s (%d rows) and provenance.json", npz_path, splits.size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
