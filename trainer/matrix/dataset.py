"""The routing matrix as stored in ``data/routing_matrix`` and its loader.

The folder contains one shard per source (``gsm8k``, ``math-l5``, ``crux`` and
one ``mmlu-pro-<subject>`` per MMLU-Pro subject), so that no file exceeds a
few MB. Each shard is a pair of files:

- ``<shard>.npz``: ``embeddings`` (n, 384) float16, ``quality`` (n, K) int8
  with -1 for a missing entry, ``input_tokens`` (n,) int32, ``output_tokens``
  (n, K) int32 with -1 for a missing entry, and ``models`` (K,) str.
- ``<shard>.prompts.jsonl.gz``: one ``{"id", "task", "text"}`` object per row.

``prices.json`` maps each model id to its price per token and the source of
that price, and ``provenance.json`` lists the shards in row order.
"""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_MATRIX_DIR",
    "MISSING",
    "RoutingMatrix",
    "load_matrix",
    "read_shard",
    "write_shard",
]

DEFAULT_MATRIX_DIR = Path(__file__).resolve().parents[2] / "data" / "routing_matrix"
MISSING = -1


@dataclass(frozen=True, repr=False)
class RoutingMatrix:
    """Prompts x models: quality, token counts and cost of each recorded call.

    ``quality[i, k]`` is 1.0 when model ``k`` answered prompt ``i``
    correctly, 0.0 when it did not, and NaN when no result was published.
    ``output_tokens`` is -1 and ``cost`` is NaN exactly where quality is NaN.
    Token counts use the bundled embedder's WordPiece tokenizer without
    truncation, and ``cost`` is in USD.
    """

    ids: np.ndarray  # (n,) str, e.g. "gsm8k/12", "mmlu-pro/4567"
    tasks: np.ndarray  # (n,) str: gsm8k, math-l5, crux or mmlu-pro:<subject>
    texts: list[str]  # (n,) prompt text as a user sends it
    embeddings: np.ndarray  # (n, 384) float32, L2-normalised
    quality: np.ndarray  # (n, K) float64, NaN where missing
    input_tokens: np.ndarray  # (n,) int64
    output_tokens: np.ndarray  # (n, K) int64, -1 where missing
    cost: np.ndarray  # (n, K) float64 USD, NaN where missing
    models: list[str]  # (K,) litellm model ids
    prices: dict[str, dict[str, Any]]  # model id -> price per token and source
    default_pool: list[str]  # model ids of the shipped router's pool

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"RoutingMatrix({len(self.ids)} prompts x {len(self.models)} models)"

    def model_index(self, model_id: str) -> int:
        """Return the column of a model id, or raise KeyError naming the known ids."""
        try:
            return self.models.index(model_id)
        except ValueError:
            raise KeyError(
                f"model {model_id!r} is not in the routing matrix; known models: "
                f"{self.models}"
            ) from None

    def select_models(self, model_ids: list[str]) -> RoutingMatrix:
        """Return a matrix restricted to the given model columns, in that order."""
        columns = [self.model_index(model_id) for model_id in model_ids]
        return RoutingMatrix(
            ids=self.ids,
            tasks=self.tasks,
            texts=self.texts,
            embeddings=self.embeddings,
            quality=self.quality[:, columns],
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens[:, columns],
            cost=self.cost[:, columns],
            models=list(model_ids),
            prices={model_id: self.prices[model_id] for model_id in model_ids},
            default_pool=[m for m in self.default_pool if m in model_ids],
        )


def compute_cost(
    input_tokens: np.ndarray,
    output_tokens: np.ndarray,
    models: list[str],
    prices: dict[str, dict[str, Any]],
) -> np.ndarray:
    """Compute the USD cost of each call, NaN where the output is missing."""
    input_price = np.array([prices[m]["input_cost_per_token"] for m in models])
    output_price = np.array([prices[m]["output_cost_per_token"] for m in models])
    cost = (
        input_tokens[:, None].astype(np.float64) * input_price[None, :]
        + output_tokens.astype(np.float64) * output_price[None, :]
    )
    cost[output_tokens == MISSING] = np.nan
    return cost


def load_matrix(path: str | Path | None = None) -> RoutingMatrix:
    """Load the committed routing matrix (default: ``data/routing_matrix``)."""
    folder = Path(path) if path is not None else DEFAULT_MATRIX_DIR
    provenance_path = folder / "provenance.json"
    if not provenance_path.is_file():
        raise FileNotFoundError(
            f"routing matrix not found: {provenance_path} is missing; rebuild it "
            "with scripts/build_matrix.py or pass the folder that contains it"
        )
    provenance = json.loads(provenance_path.read_text(encoding="utf-8"))
    prices = json.loads((folder / "prices.json").read_text(encoding="utf-8"))
    models = list(provenance["models"])

    parts = [read_shard(folder, name, models) for name in provenance["shards"]]
    quality_codes = np.concatenate([p["quality"] for p in parts])
    output_tokens = np.concatenate([p["output_tokens"] for p in parts]).astype(np.int64)
    input_tokens = np.concatenate([p["input_tokens"] for p in parts]).astype(np.int64)

    quality = quality_codes.astype(np.float64)
    quality[quality_codes == MISSING] = np.nan

    return RoutingMatrix(
        ids=np.array([i for p in parts for i in p["ids"]]),
        tasks=np.array([t for p in parts for t in p["tasks"]]),
        texts=[t for p in parts for t in p["texts"]],
        embeddings=np.concatenate([p["embeddings"] for p in parts]).astype(np.float32),
        quality=quality,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost=compute_cost(input_tokens, output_tokens, models, prices),
        models=models,
        prices=prices,
        default_pool=list(provenance["default_pool"]),
    )


def read_shard(folder: Path, name: str, models: list[str]) -> dict[str, Any]:
    """Read one shard and check that its model columns match ``models``."""
    with np.load(folder / f"{name}.npz", allow_pickle=False) as arrays:
        shard = {key: arrays[key] for key in arrays.files}
    if list(shard["models"]) != models:
        raise ValueError(
            f"shard {name} has model columns {list(shard['models'])}, expected "
            f"{models}; rebuild the matrix with scripts/build_matrix.py"
        )

    rows = _read_prompts(folder / f"{name}.prompts.jsonl.gz")
    if len(rows) != shard["quality"].shape[0]:
        raise ValueError(
            f"shard {name} has {len(rows)} prompts but {shard['quality'].shape[0]} "
            "matrix rows; rebuild the matrix with scripts/build_matrix.py"
        )
    shard["ids"] = [row["id"] for row in rows]
    shard["tasks"] = [row["task"] for row in rows]
    shard["texts"] = [row["text"] for row in rows]
    return shard


def write_shard(
    folder: Path,
    name: str,
    rows: list[dict[str, str]],
    arrays: dict[str, np.ndarray],
) -> list[Path]:
    """Write one shard's arrays and prompt rows; return the two paths written."""
    npz_path = folder / f"{name}.npz"
    _save_npz(npz_path, arrays)

    prompts_path = folder / f"{name}.prompts.jsonl.gz"
    # mtime=0 keeps the gzip bytes identical when the content is unchanged.
    with (
        open(prompts_path, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as handle,
    ):
        for row in rows:
            line = json.dumps(row, ensure_ascii=False) + "\n"
            handle.write(line.encode("utf-8"))
    return [npz_path, prompts_path]


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    # Same layout as np.savez_compressed, but with a fixed timestamp on every
    # member, so an unchanged rebuild writes identical bytes.
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
            member = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            member.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(member, buffer.getvalue())


def _read_prompts(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]
