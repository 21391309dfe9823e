"""Models of the routing matrix and readers for the published per-prompt results.

Two sources are read, both in the layout of their upstream repositories:

- ZeroEval (github.com/yuchenlin/ZeroEval, Apache-2.0):
  ``zeroeval/result_dirs/{gsm,math-l5,crux}/<model>.json.gz``, one JSON list
  per model with the raw output of each question and the gold answer.
- MMLU-Pro (github.com/TIGER-AI-Lab/MMLU-Pro, Apache-2.0):
  ``mmlu-pro/eval_results/model_outputs_<model>_5shots.zip`` or a folder of
  ``<subject>_result.json.gz`` files, one record per question with the
  extracted letter ``pred`` and the gold letter ``answer``.
"""

from __future__ import annotations

import ast
import gzip
import json
import logging
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_POOL",
    "MODELS",
    "ZEROEVAL_TASKS",
    "ModelSpec",
    "ZeroEvalTask",
    "format_mmlu_pro_prompt",
    "mmlu_pro_output_text",
    "read_mmlu_pro",
    "read_zeroeval",
    "zeroeval_summary",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ZeroEvalTask:
    """One ZeroEval benchmark: its folder, matrix task label and question field."""

    folder: str
    task: str
    question_field: str


ZEROEVAL_TASKS = (
    ZeroEvalTask("gsm", "gsm8k", "question"),
    ZeroEvalTask("math-l5", "math-l5", "problem"),
    ZeroEvalTask("crux", "crux", "question"),
)


@dataclass(frozen=True)
class ModelSpec:
    """A model of the matrix and the upstream result files that stand for it.

    ``zeroeval`` maps a ZeroEval folder (``gsm``, ``math-l5``, ``crux``) to a
    file name without ``.json.gz``, and ``mmlu_pro`` is an MMLU-Pro folder name
    or the ``<model>`` part of a zip name. A missing key means the source has no
    results for this model, and its matrix entries stay missing.
    """

    model_id: str
    provider: str  # litellm provider that serves the id
    developer: str  # organisation that trained the model
    zeroeval: dict[str, str]
    mmlu_pro: str | None
    in_default_pool: bool
    version_note: str
    summary_names: dict[str, str] = field(default_factory=dict)


def _all_tasks(stem: str) -> dict[str, str]:
    return {task.folder: stem for task in ZEROEVAL_TASKS}


MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "gpt-4o-2024-05-13",
        "openai",
        "openai",
        _all_tasks("gpt-4o-2024-05-13"),
        "gpt4o",
        True,
        "Same snapshot in both sources: ZeroEval calls openai/gpt-4o-2024-05-13 "
        "and the MMLU-Pro gpt4o folder was published on 2024-05-20.",
    ),
    ModelSpec(
        "gemini/gemini-1.5-pro",
        "gemini",
        "google",
        _all_tasks("gemini-1.5-pro"),
        "gemini-1.5-pro-002",
        True,
        "Versions differ: ZeroEval called the google/gemini-1.5-pro alias before "
        "2024-09-24 (so most likely gemini-1.5-pro-001); MMLU-Pro ran "
        "gemini-1.5-pro-002.",
    ),
    ModelSpec(
        "gemini/gemini-1.5-flash",
        "gemini",
        "google",
        _all_tasks("gemini-1.5-flash"),
        "gemini-1.5-flash-002",
        True,
        "Versions differ: ZeroEval called the google/gemini-1.5-flash alias before "
        "2024-09-24 (so most likely gemini-1.5-flash-001); MMLU-Pro ran "
        "gemini-1.5-flash-002.",
    ),
    ModelSpec(
        "together_ai/meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo",
        "together_ai",
        "meta",
        _all_tasks("Meta-Llama-3.1-70B-Instruct"),
        "Meta-Llama-3_1-70B-Instruct",
        True,
        "Both sources ran the open weights meta-llama/Meta-Llama-3.1-70B-Instruct "
        "(ZeroEval with vLLM); Together's Turbo endpoint serves an FP8 "
        "quantisation of the same weights.",
    ),
    ModelSpec(
        "together_ai/meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo",
        "together_ai",
        "meta",
        _all_tasks("Meta-Llama-3.1-8B-Instruct"),
        "Meta-Llama-3_1-8B-Instruct",
        True,
        "Both sources ran the open weights meta-llama/Meta-Llama-3.1-8B-Instruct "
        "(ZeroEval with vLLM); Together's Turbo endpoint serves an FP8 "
        "quantisation of the same weights.",
    ),
    ModelSpec(
        "together_ai/mistralai/Mixtral-8x7B-Instruct-v0.1",
        "together_ai",
        "mistral",
        {"gsm": "Mixtral-8x7B-Instruct-v0.1", "crux": "Mixtral-8x7B-Instruct-v0.1"},
        "Mixtral-8x7B-Instruct-v0.1",
        True,
        "Same open weights in both sources. ZeroEval has no MATH level 5 results "
        "for this model, so those prompts are missing.",
    ),
    ModelSpec(
        "deepseek/deepseek-chat",
        "deepseek",
        "deepseek",
        {"gsm": "deepseek-chat", "crux": "deepseek-v2-chat-0628"},
        "deepseek",
        False,
        "Versions differ: ZeroEval ran DeepSeek-V2-Chat-0628 through the API; the "
        "MMLU-Pro deepseek folder (2024-05-20) is the API chat model of May 2024. "
        "No MATH level 5 results. The deepseek-chat id now serves a later model.",
        {"gsm": "deepseek-v2-chat-0628"},
    ),
    ModelSpec(
        "deepseek/deepseek-coder",
        "deepseek",
        "deepseek",
        {"gsm": "DeepSeek-Coder-V2-0724", "crux": "deepseek-v2-coder-0724"},
        "DeepSeek-Coder-V2",
        False,
        "ZeroEval ran DeepSeek-Coder-V2-0724; the MMLU-Pro file names no version "
        "and covers 10,351 of 12,032 questions. No MATH level 5 results.",
        {"gsm": "deepseek-v2-coder-0724"},
    ),
    ModelSpec(
        "gpt-4o-2024-08-06",
        "openai",
        "openai",
        _all_tasks("gpt-4o-2024-08-06"),
        None,
        False,
        "ZeroEval only.",
    ),
    ModelSpec(
        "gpt-4o-mini-2024-07-18",
        "openai",
        "openai",
        _all_tasks("gpt-4o-mini-2024-07-18"),
        None,
        False,
        "ZeroEval only.",
    ),
    ModelSpec(
        "gpt-3.5-turbo-0125",
        "openai",
        "openai",
        _all_tasks("gpt-3.5-turbo-0125"),
        None,
        False,
        "ZeroEval only.",
    ),
    ModelSpec(
        "claude-3-5-sonnet-20240620",
        "anthropic",
        "anthropic",
        _all_tasks("claude-3-5-sonnet-20240620"),
        None,
        False,
        "ZeroEval only.",
    ),
    ModelSpec(
        "claude-3-haiku-20240307",
        "anthropic",
        "anthropic",
        _all_tasks("claude-3-haiku-20240307"),
        None,
        False,
        "ZeroEval only.",
    ),
)

DEFAULT_POOL: tuple[str, ...] = tuple(m.model_id for m in MODELS if m.in_default_pool)


def read_zeroeval(data_dir: Path, folder: str, stem: str) -> list[dict[str, Any]]:
    """Read one ZeroEval result file: a list of records, one per question."""
    path = data_dir / "zeroeval" / "result_dirs" / folder / f"{stem}.json.gz"
    if not path.is_file():
        raise FileNotFoundError(
            f"ZeroEval result file {path} not found; pass --data-dir pointing at "
            "the folder that contains zeroeval/ and mmlu-pro/"
        )
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        records = json.load(handle)
    logger.debug("read %d records from %s", len(records), path)
    return records


def zeroeval_summary(data_dir: Path, folder: str) -> dict[str, float]:
    """Read ZeroEval's published accuracy in percent, keyed by its model name."""
    path = data_dir / "zeroeval" / "result_dirs" / f"{folder}.summary.json"
    rows = json.loads(path.read_text(encoding="utf-8"))
    return {row["Model"]: float(row["Acc"]) for row in rows}


def read_mmlu_pro(data_dir: Path, source: str) -> dict[int, dict[str, Any]]:
    """Read one model's MMLU-Pro records keyed by ``question_id``.

    Non-record entries (some zips contain bare subject names) are skipped. A
    repeated ``question_id`` keeps its first record.
    """
    records: dict[int, dict[str, Any]] = {}
    skipped = 0
    for item in _iter_mmlu_pro_items(data_dir / "mmlu-pro" / "eval_results", source):
        if not isinstance(item, dict) or "question_id" not in item:
            skipped += 1
            continue
        records.setdefault(int(item["question_id"]), item)
    logger.debug(
        "read %d MMLU-Pro records of %s, skipped %d non-records",
        len(records),
        source,
        skipped,
    )
    return records


def _iter_mmlu_pro_items(root: Path, source: str) -> Iterator[Any]:
    folder = root / source
    if folder.is_dir():
        files = sorted(folder.glob("*_result.json*"))
        if not files:
            raise FileNotFoundError(f"no *_result.json files in {folder}")
        for path in files:
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rt", encoding="utf-8") as handle:
                yield from json.load(handle)
        return

    archive = root / f"model_outputs_{source}_5shots.zip"
    if not archive.is_file():
        raise FileNotFoundError(
            f"MMLU-Pro results for {source!r} not found: expected {folder}/ or "
            f"{archive}"
        )
    with zipfile.ZipFile(archive) as bundle:
        for name in bundle.namelist():
            if name.endswith(".json"):
                yield from json.loads(bundle.read(name))


def mmlu_pro_output_text(record: dict[str, Any]) -> str:
    """Return the model's raw text; the field name differs between result files."""
    for key in ("model_outputs", "generated_text", "response"):
        value = record.get(key)
        if isinstance(value, str):
            return value
    return ""


def format_mmlu_pro_prompt(record: dict[str, Any]) -> str:
    """Format an MMLU-Pro question and its lettered options as a user message.

    The 5-shot preamble of the evaluation harness is left out, because a user
    of the router sends only the question.
    """
    options = record["options"]
    if isinstance(options, str):
        options = ast.literal_eval(options)
    lines = [record["question"].strip(), "", "Options:"]
    for index, option in enumerate(options):
        lines.append(f"{chr(ord('A') + index)}. {option}")
    return "\n".join(lines)
