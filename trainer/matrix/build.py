"""Build the routing matrix from the raw ZeroEval and MMLU-Pro result files.

The steps are: join each source's per-model records on the question id,
grade them, check the ZeroEval grader against the published accuracies, count
tokens, price every call, embed the prompts last, and write the shards.
"""

from __future__ import annotations

import datetime
import gzip
import json
import logging
import platform
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .dataset import MISSING, compute_cost, read_shard, write_shard
from .grading import grade
from .prices import resolve_prices
from .sources import (
    DEFAULT_POOL,
    MODELS,
    ZEROEVAL_TASKS,
    ModelSpec,
    ZeroEvalTask,
    format_mmlu_pro_prompt,
    mmlu_pro_output_text,
    read_mmlu_pro,
    read_zeroeval,
    zeroeval_summary,
)

__all__ = [
    "MAX_AGREEMENT_GAP",
    "Shard",
    "build_matrix",
    "zeroeval_index",
    "zeroeval_output",
]

logger = logging.getLogger(__name__)

# Largest allowed gap, in accuracy points, between this grader and ZeroEval's
# published accuracy for any model file that enters the matrix.
MAX_AGREEMENT_GAP = 1.5
EMBED_BATCH_SIZE = 64
MAX_FILE_BYTES = 5 * 1024 * 1024

SOURCES = [
    {
        "name": "ZeroEval",
        "repository": "https://github.com/yuchenlin/ZeroEval",
        "commit": "570c6269a2e4930ee06a17e713fece1ba52cf1dd",
        "licence": "Apache-2.0 (questions: GSM8K MIT, MATH MIT, CRUXEval MIT)",
        "files": "result_dirs/{gsm,math-l5,crux}/<model>.json, "
        "result_dirs/{gsm,math-l5,crux}.summary.json",
    },
    {
        "name": "MMLU-Pro",
        "repository": "https://github.com/TIGER-AI-Lab/MMLU-Pro",
        "commit": "f418b116db00b065c2aea046518d8fcf74d39872",
        "licence": "Apache-2.0 (questions on Hugging Face: MIT)",
        "files": "eval_results/model_outputs_<model>_5shots.zip",
    },
    {
        "name": "MMLU-Pro (files deleted upstream later)",
        "repository": "https://github.com/TIGER-AI-Lab/MMLU-Pro",
        "commit": "ff991b5b7f14a383fd41da3987447ab6c08bf138",
        "licence": "Apache-2.0",
        "files": "eval_results/{gpt4o,deepseek}/<subject>_result.json and "
        "<subject>_summary.json",
    },
]


@dataclass
class Shard:
    """Rows of one output file, before token counting and embedding."""

    name: str
    rows: list[dict[str, str]]
    quality: np.ndarray  # (n, K) int8, MISSING where no record exists
    outputs: list[list[str | None]]  # [model][row] raw output text, None if missing
    embeddings: np.ndarray | None = None
    input_tokens: np.ndarray | None = None
    output_tokens: np.ndarray | None = None


def build_matrix(
    data_dir: Path,
    out_dir: Path,
    *,
    build_command: str,
    reuse_embeddings: bool = False,
    models: Sequence[ModelSpec] = MODELS,
) -> dict[str, Any]:
    """Build the matrix from ``data_dir`` into ``out_dir``; return the provenance.

    Raises:
        ValueError: the grader disagrees with a published ZeroEval accuracy by
            more than ``MAX_AGREEMENT_GAP`` points for a model in the matrix, or
            a written file exceeds 5 MiB.
    """
    from smartllm import Embedder
    from smartllm._embedder import load_manifest

    model_ids = [m.model_id for m in models]
    prices = resolve_prices(model_ids)
    for spec in models:
        prices[spec.model_id]["provider"] = spec.provider
        prices[spec.model_id]["developer"] = spec.developer

    agreement: list[dict[str, Any]] = []
    shards = [
        collect_zeroeval(data_dir, models, task, agreement) for task in ZEROEVAL_TASKS
    ]
    shards += collect_mmlu_pro(data_dir, models, agreement)
    _check_agreement(agreement)

    embedder = Embedder()
    for shard in shards:
        _count_tokens(shard, embedder.count_tokens)
    previous = _previous_embeddings(out_dir, model_ids) if reuse_embeddings else {}
    for shard in shards:
        _embed(shard, embedder.embed, previous)

    out_dir.mkdir(parents=True, exist_ok=True)
    written = _write_all(out_dir, shards, model_ids)
    (out_dir / "prices.json").write_text(
        json.dumps(prices, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )

    provenance = _provenance(
        shards, models, prices, agreement, build_command, load_manifest(), written
    )
    (out_dir / "provenance.json").write_text(
        json.dumps(provenance, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    _check_sizes(out_dir)
    return provenance


def collect_zeroeval(
    data_dir: Path,
    models: Sequence[ModelSpec],
    task: ZeroEvalTask,
    agreement: list[dict[str, Any]],
) -> Shard:
    """Grade every model's ZeroEval records of one task and join them by question."""
    summary = zeroeval_summary(data_dir, task.folder)
    by_model: list[dict[int, dict[str, Any]]] = []
    for spec in models:
        stem = spec.zeroeval.get(task.folder)
        if stem is None:
            by_model.append({})
            continue
        records = read_zeroeval(data_dir, task.folder, stem)
        by_model.append({zeroeval_index(r["id"]): r for r in records})
        upstream_name = spec.summary_names.get(task.folder, stem)
        agreement.append(
            _zeroeval_agreement(task, spec, stem, records, summary.get(upstream_name))
        )

    indices = sorted({i for records in by_model for i in records})
    rows = []
    for index in indices:
        record = next(r[index] for r in by_model if index in r)
        text = str(record[task.question_field]).strip()
        rows.append({"id": f"{task.task}/{index}", "task": task.task, "text": text})
    _warn_on_text_mismatch(task.task, by_model, indices, task.question_field)

    quality = np.full((len(indices), len(models)), MISSING, dtype=np.int8)
    outputs: list[list[str | None]] = []
    for column, records in enumerate(by_model):
        column_outputs: list[str | None] = []
        for row, index in enumerate(indices):
            record = records.get(index)
            if record is None:
                column_outputs.append(None)
                continue
            output = zeroeval_output(record)
            quality[row, column] = grade(task.task, output, str(record["answer"]))
            column_outputs.append(output)
        outputs.append(column_outputs)
    logger.info("%s: %d prompts", task.task, len(rows))
    return Shard(task.task, rows, quality, outputs)


def collect_mmlu_pro(
    data_dir: Path, models: Sequence[ModelSpec], agreement: list[dict[str, Any]]
) -> list[Shard]:
    """Join the MMLU-Pro records of every model; return one shard per subject."""
    by_model: list[dict[int, dict[str, Any]]] = []
    for spec in models:
        if spec.mmlu_pro is None:
            by_model.append({})
            continue
        records = read_mmlu_pro(data_dir, spec.mmlu_pro)
        by_model.append(records)
        agreement.append(_mmlu_pro_agreement(data_dir, spec, records))

    question_ids = sorted({q for records in by_model for q in records})
    subjects: dict[str, list[int]] = {}
    for question_id in question_ids:
        record = next(r[question_id] for r in by_model if question_id in r)
        subjects.setdefault(str(record["category"]), []).append(question_id)

    shards = []
    for subject in sorted(subjects):
        shards.append(_mmlu_pro_shard(subject, subjects[subject], by_model))
    logger.info("mmlu-pro: %d prompts in %d subjects", len(question_ids), len(shards))
    return shards


def _mmlu_pro_shard(
    subject: str, question_ids: list[int], by_model: list[dict[int, dict[str, Any]]]
) -> Shard:
    task = f"mmlu-pro:{subject}"
    rows = []
    for question_id in question_ids:
        record = next(r[question_id] for r in by_model if question_id in r)
        text = format_mmlu_pro_prompt(record)
        rows.append({"id": f"mmlu-pro/{question_id}", "task": task, "text": text})

    quality = np.full((len(question_ids), len(by_model)), MISSING, dtype=np.int8)
    outputs: list[list[str | None]] = []
    for column, records in enumerate(by_model):
        column_outputs: list[str | None] = []
        for row, question_id in enumerate(question_ids):
            record = records.get(question_id)
            if record is None:
                column_outputs.append(None)
                continue
            # A null pred means the harness found no answer letter, so it is wrong.
            pred = record.get("pred")
            quality[row, column] = int(pred is not None and pred == record["answer"])
            column_outputs.append(mmlu_pro_output_text(record))
        outputs.append(column_outputs)
    name = "mmlu-pro-" + re.sub(r"[^a-z0-9]+", "-", subject.lower()).strip("-")
    return Shard(name, rows, quality, outputs)


def zeroeval_index(record_id: Any) -> int:
    """Return the question number of a ZeroEval id such as ``gsm8k-main-test-#12``."""
    if isinstance(record_id, int):
        return record_id
    match = re.search(r"(\d+)$", str(record_id))
    if match is None:
        raise ValueError(f"ZeroEval record id {record_id!r} has no trailing number")
    return int(match.group(1))


def zeroeval_output(record: dict[str, Any]) -> str:
    """Return a record's raw output text; ZeroEval stores it as a one-element list."""
    output = record.get("output") or [""]
    return str(output[0] or "")


def _zeroeval_agreement(
    task: ZeroEvalTask,
    spec: ModelSpec,
    stem: str,
    records: list[dict[str, Any]],
    upstream: float | None,
) -> dict[str, Any]:
    correct = sum(
        grade(task.task, zeroeval_output(r), str(r["answer"])) for r in records
    )
    accuracy = 100.0 * correct / len(records)
    return {
        "source": f"zeroeval/{task.folder}",
        "model_id": spec.model_id,
        "file": stem,
        "n": len(records),
        "grader_accuracy": round(accuracy, 2),
        "upstream_accuracy": upstream,
        "difference": None if upstream is None else round(accuracy - upstream, 2),
        "enforced": True,
    }


def _mmlu_pro_agreement(
    data_dir: Path, spec: ModelSpec, records: dict[int, dict[str, Any]]
) -> dict[str, Any]:
    correct = sum(
        int(r.get("pred") is not None and r.get("pred") == r["answer"])
        for r in records.values()
    )
    accuracy = 100.0 * correct / len(records)
    upstream = _mmlu_pro_upstream_accuracy(data_dir, str(spec.mmlu_pro))
    return {
        "source": "mmlu-pro",
        "model_id": spec.model_id,
        "file": spec.mmlu_pro,
        "n": len(records),
        "grader_accuracy": round(accuracy, 2),
        "upstream_accuracy": upstream,
        "difference": None if upstream is None else round(accuracy - upstream, 2),
        # MMLU-Pro's scorer replaces a null pred by a random letter, so its
        # figure exceeds pred == answer by about a tenth of the null share.
        "enforced": False,
    }


def _mmlu_pro_upstream_accuracy(data_dir: Path, source: str) -> float | None:
    folder = data_dir / "mmlu-pro" / "eval_results" / source
    files = sorted(folder.glob("*_summary.json.gz")) if folder.is_dir() else []
    if not files:
        return None
    correct = wrong = 0.0
    for path in files:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            total = json.load(handle)["total"]
        correct += total["corr"]
        wrong += total["wrong"]
    return round(100.0 * correct / (correct + wrong), 2)


def _check_agreement(agreement: list[dict[str, Any]]) -> None:
    for row in agreement:
        logger.info(
            "%-18s %-58s n=%5d grader %6.2f upstream %s",
            row["source"],
            row["model_id"],
            row["n"],
            row["grader_accuracy"],
            row["upstream_accuracy"],
        )
    failures = [
        row
        for row in agreement
        if row["enforced"]
        and (row["difference"] is None or abs(row["difference"]) > MAX_AGREEMENT_GAP)
    ]
    if failures:
        listing = ", ".join(
            f"{r['source']} {r['file']}: {r['grader_accuracy']} vs "
            f"{r['upstream_accuracy']}"
            for r in failures
        )
        raise ValueError(
            f"grader disagrees with ZeroEval's published accuracy by more than "
            f"{MAX_AGREEMENT_GAP} points (or the summary has no row) for: {listing}"
        )


def _warn_on_text_mismatch(
    task: str,
    by_model: list[dict[int, dict[str, Any]]],
    indices: list[int],
    question_field: str,
) -> None:
    mismatches = 0
    for index in indices:
        texts = {str(r[index][question_field]).strip() for r in by_model if index in r}
        mismatches += len(texts) > 1
    if mismatches:
        logger.warning(
            "%s: %d questions differ in text between model files; "
            "the first model's text is kept",
            task,
            mismatches,
        )


def _count_tokens(shard: Shard, count: Callable[[list[str]], np.ndarray]) -> None:
    shard.input_tokens = count([row["text"] for row in shard.rows]).astype(np.int32)
    output_tokens = np.full(shard.quality.shape, MISSING, dtype=np.int32)
    for column, outputs in enumerate(shard.outputs):
        present = [row for row, text in enumerate(outputs) if text is not None]
        if present:
            texts = [str(outputs[row]) for row in present]
            output_tokens[present, column] = count(texts)
    shard.output_tokens = output_tokens


def _previous_embeddings(
    out_dir: Path, model_ids: list[str]
) -> dict[tuple[str, str], np.ndarray]:
    """Map (id, text) of an existing build to its float16 embedding."""
    provenance_path = out_dir / "provenance.json"
    if not provenance_path.is_file():
        return {}
    provenance = json.loads(provenance_path.read_text(encoding="utf-8"))
    previous: dict[tuple[str, str], np.ndarray] = {}
    for name in provenance.get("shards", []):
        try:
            shard = read_shard(out_dir, name, list(provenance["models"]))
        except (OSError, ValueError, KeyError) as exc:
            logger.warning("cannot reuse embeddings of shard %s: %s", name, exc)
            continue
        for key, vector in zip(
            zip(shard["ids"], shard["texts"]), shard["embeddings"], strict=True
        ):
            previous[key] = vector
    logger.info("found %d embeddings to reuse in %s", len(previous), out_dir)
    return previous


def _embed(
    shard: Shard,
    embed: Callable[[list[str]], np.ndarray],
    previous: dict[tuple[str, str], np.ndarray],
) -> None:
    embeddings = np.zeros((len(shard.rows), 384), dtype=np.float16)
    todo = []
    for row, prompt in enumerate(shard.rows):
        vector = previous.get((prompt["id"], prompt["text"]))
        if vector is None:
            todo.append(row)
        else:
            embeddings[row] = vector

    for start in range(0, len(todo), EMBED_BATCH_SIZE):
        batch = todo[start : start + EMBED_BATCH_SIZE]
        vectors = embed([shard.rows[row]["text"] for row in batch])
        embeddings[batch] = vectors.astype(np.float16)
    logger.info(
        "%s: embedded %d prompts, reused %d",
        shard.name,
        len(todo),
        len(shard.rows) - len(todo),
    )
    shard.embeddings = embeddings


def _write_all(out_dir: Path, shards: list[Shard], model_ids: list[str]) -> list[Path]:
    stale = set(out_dir.glob("*.npz")) | set(out_dir.glob("*.prompts.jsonl.gz"))
    written: list[Path] = []
    for shard in shards:
        arrays = {
            "embeddings": shard.embeddings,
            "quality": shard.quality,
            "input_tokens": shard.input_tokens,
            "output_tokens": shard.output_tokens,
            "models": np.array(model_ids),
        }
        written += write_shard(out_dir, shard.name, shard.rows, arrays)
    for path in sorted(stale - set(written)):
        logger.info("removing stale shard file %s", path)
        path.unlink()
    return written


def _check_sizes(out_dir: Path) -> None:
    for path in sorted(out_dir.iterdir()):
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ValueError(
                f"{path} is {size / 2**20:.1f} MiB, over the 5 MiB limit per "
                "committed file; split that source into more shards"
            )


def _provenance(
    shards: list[Shard],
    models: Sequence[ModelSpec],
    prices: dict[str, dict[str, Any]],
    agreement: list[dict[str, Any]],
    build_command: str,
    embedder_manifest: dict[str, Any],
    written: list[Path],
) -> dict[str, Any]:
    import importlib.metadata

    quality = np.concatenate([s.quality for s in shards])
    input_tokens = np.concatenate([s.input_tokens for s in shards])
    output_tokens = np.concatenate([s.output_tokens for s in shards])
    model_ids = [m.model_id for m in models]
    cost = compute_cost(input_tokens, output_tokens, model_ids, prices)
    tasks = [row["task"] for s in shards for row in s.rows]

    per_model = {}
    for column, spec in enumerate(models):
        covered = quality[:, column] != MISSING
        per_model[spec.model_id] = {
            "provider": spec.provider,
            "developer": spec.developer,
            "in_default_pool": spec.in_default_pool,
            "zeroeval_files": spec.zeroeval,
            "mmlu_pro_source": spec.mmlu_pro,
            "version_note": spec.version_note,
            "n_prompts": int(covered.sum()),
            "accuracy": round(float(quality[covered, column].mean()), 4),
            "mean_output_tokens": round(
                float(output_tokens[covered, column].mean()), 1
            ),
            "mean_cost_usd": float(np.nanmean(cost[:, column])),
        }

    return {
        "description": "Prompts x models routing matrix: 0/1 quality, WordPiece "
        "token counts and derived USD cost per call, built from published "
        "per-prompt results. Raw model outputs are not included.",
        "build_command": build_command,
        "built_on": datetime.date.today().isoformat(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "litellm_version": importlib.metadata.version("litellm"),
        "tokenizers_version": importlib.metadata.version("tokenizers"),
        "sources": SOURCES,
        "tokenizer": {
            "file": "smartllm/assets/tokenizer.json",
            "sha256": embedder_manifest.get("tokenizer_sha256"),
            "model": embedder_manifest.get("model"),
            "call": "Tokenizer.encode_batch(texts, add_special_tokens=False) "
            "with truncation and padding disabled (smartllm.Embedder.count_tokens)",
        },
        "embedder": {
            "model": embedder_manifest.get("model"),
            "onnx_sha256": embedder_manifest.get("onnx_sha256"),
            "truncation": embedder_manifest.get("truncation"),
            "stored_as": "float16, L2-normalised",
        },
        "grading": {
            "zeroeval": "trainer.matrix.grading.grade",
            "mmlu_pro": "pred == answer; a null pred is wrong",
            "max_agreement_gap_points": MAX_AGREEMENT_GAP,
        },
        "grader_agreement": agreement,
        "models": model_ids,
        "default_pool": list(DEFAULT_POOL),
        "model_details": per_model,
        "n_prompts": int(quality.shape[0]),
        "tasks": {task: tasks.count(task) for task in sorted(set(tasks))},
        "shards": [s.name for s in shards],
        "files": sorted(path.name for path in written),
    }
