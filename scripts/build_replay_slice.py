"""Extract the recorded answers that examples/learn_loop.py replays.

    python scripts/build_replay_slice.py --data-dir DATA

DATA must contain ``zeroeval/result_dirs/{gsm,math-l5,crux}/<model>.json.gz``
in the layout of the ZeroEval repository (github.com/yuchenlin/ZeroEval).
The slice keeps only the held-out test prompts of the routing matrix (about
one in five, chosen by ``trainer.pretrain.split_by_id``), so the bundled
router never saw them in training. For each prompt it stores the question
text, the gold answer, the input token count and, for each selected model,
the raw output text and its output token count. Tokens are counted with the
bundled tokenizer (``smartllm.Embedder.count_tokens``), as the matrix does.

Output, in ``examples/replay_data/`` by default:

- ``prompts.jsonl.gz``: one object per prompt, ``{"id", "task", "text",
  "gold", "input_tokens", "answers": {model: {"output", "output_tokens"}}}``.
  A model without a published result for that prompt has no key.
- ``provenance.json``: source repository, commit and licence, the models
  with their ZeroEval file names and prices, counts, and the build command.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import logging
import sys
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from trainer.matrix.build import zeroeval_index, zeroeval_output  # noqa: E402
from trainer.matrix.grading import grade  # noqa: E402
from trainer.matrix.prices import resolve_prices  # noqa: E402
from trainer.matrix.sources import (  # noqa: E402
    DEFAULT_POOL,
    MODELS,
    ZEROEVAL_TASKS,
    ModelSpec,
    read_zeroeval,
)
from trainer.pretrain import TEST_PERCENT, split_by_id  # noqa: E402

logger = logging.getLogger("build_replay_slice")

DEFAULT_OUT = REPO / "examples" / "replay_data"
# Cheap and strong on CRUXEval and MATH, and absent from the bundled router's
# pool, so the example can show its cold start.
DEFAULT_EXTRA_MODELS = ("gpt-4o-mini-2024-07-18",)
ZEROEVAL_SOURCE = {
    "repository": "https://github.com/yuchenlin/ZeroEval",
    "commit": "570c6269a2e4930ee06a17e713fece1ba52cf1dd",
    "licence": "Apache-2.0",
    "question_licences": "GSM8K MIT, MATH MIT, CRUXEval MIT",
    "files": "result_dirs/{gsm,math-l5,crux}/<model>.json",
}
MAX_OUTPUT_BYTES = 5 * 1024 * 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        required=True,
        help="folder that contains zeroeval/result_dirs/ with the raw ZeroEval results",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="output folder (default: examples/replay_data in the repository)",
    )
    parser.add_argument(
        "--extra-model",
        action="append",
        help="matrix model id to add besides the default pool; repeat for more "
        f"(default: {', '.join(DEFAULT_EXTRA_MODELS)})",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    extra = tuple(args.extra_model or DEFAULT_EXTRA_MODELS)
    specs = select_models(extra)
    prompts = collect_prompts(args.data_dir, specs)
    count_tokens(prompts)

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "prompts.jsonl.gz"
    write_jsonl_gz(path, prompts)
    if path.stat().st_size > MAX_OUTPUT_BYTES:
        raise SystemExit(
            f"{path} is {path.stat().st_size / 2**20:.1f} MiB, over the 5 MiB limit; "
            "select fewer models with --extra-model"
        )

    command = "python scripts/build_replay_slice.py --data-dir <data-dir>"
    for model in args.extra_model or ():
        command += f" --extra-model {model}"
    provenance = describe(prompts, specs, extra, command)
    (args.out / "provenance.json").write_text(
        json.dumps(provenance, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    print_summary(provenance, path)
    return 0


def select_models(extra: tuple[str, ...]) -> list[ModelSpec]:
    """Return the specs of the default pool followed by the extra models."""
    by_id = {spec.model_id: spec for spec in MODELS}
    unknown = [model for model in extra if model not in by_id]
    if unknown:
        raise SystemExit(
            f"--extra-model {unknown} not found in trainer/matrix/sources.py; use one "
            f"of {sorted(set(by_id) - set(DEFAULT_POOL))}"
        )
    ordered = list(DEFAULT_POOL) + [m for m in extra if m not in DEFAULT_POOL]
    return [by_id[model] for model in ordered]


def collect_prompts(data_dir: Path, specs: list[ModelSpec]) -> list[dict[str, Any]]:
    """Join the selected models' records on each held-out question of every task."""
    prompts: list[dict[str, Any]] = []
    for task in ZEROEVAL_TASKS:
        by_question: dict[int, dict[str, Any]] = {}
        for spec in specs:
            stem = spec.zeroeval.get(task.folder)
            if stem is None:
                logger.info("%s: no %s results, prompts stay without it", spec.model_id,
                            task.task)
                continue
            for record in read_zeroeval(data_dir, task.folder, stem):
                index = zeroeval_index(record["id"])
                prompt = by_question.setdefault(
                    index,
                    {
                        # The id format matches the routing matrix, so that
                        # split_by_id selects the same test prompts.
                        "id": f"{task.task}/{index}",
                        "task": task.task,
                        "text": str(record[task.question_field]).strip(),
                        "gold": str(record["answer"]),
                        "answers": {},
                    },
                )
                prompt["answers"][spec.model_id] = {"output": zeroeval_output(record)}

        questions = sorted(by_question)
        ids = [by_question[index]["id"] for index in questions]
        test = split_by_id(ids).test
        selected = [by_question[questions[row]] for row in test]
        logger.info("%s: %d of %d prompts are held out", task.task, len(selected),
                    len(questions))
        prompts.extend(selected)
    return prompts


def count_tokens(prompts: list[dict[str, Any]]) -> None:
    """Add WordPiece token counts of each prompt text and each output, in place."""
    from smartllm import Embedder

    embedder = Embedder()
    counts = embedder.count_tokens([p["text"] for p in prompts])
    for prompt, count in zip(prompts, counts, strict=True):
        prompt["input_tokens"] = int(count)

    for prompt in prompts:
        answers = list(prompt["answers"].values())
        counts = embedder.count_tokens([a["output"] for a in answers])
        for answer, count in zip(answers, counts, strict=True):
            answer["output_tokens"] = int(count)


def write_jsonl_gz(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write rows as gzip JSON lines; mtime=0 keeps the bytes stable across builds."""
    with open(path, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as handle:
            for row in rows:
                handle.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))


def describe(
    prompts: list[dict[str, Any]], specs: list[ModelSpec], extra: tuple[str, ...], command: str
) -> dict[str, Any]:
    """Build provenance.json: sources, models, prices, counts and accuracy."""
    model_ids = [spec.model_id for spec in specs]
    prices = resolve_prices(model_ids)
    models = {}
    for spec in specs:
        answered = [p for p in prompts if spec.model_id in p["answers"]]
        correct = sum(
            grade(p["task"], p["answers"][spec.model_id]["output"], p["gold"])
            for p in answered
        )
        models[spec.model_id] = {
            "zeroeval_files": spec.zeroeval,
            "in_default_pool": spec.in_default_pool,
            "role": "extra model, not in the bundled router's pool"
            if spec.model_id in extra
            else "default pool",
            "version_note": spec.version_note,
            "prompts": len(answered),
            "accuracy": round(correct / max(len(answered), 1), 4),
            "price": prices[spec.model_id],
        }

    return {
        "description": "Held-out ZeroEval prompts with each model's recorded output, "
        "gold answer and WordPiece token counts, replayed by examples/replay_server.py.",
        "source": ZEROEVAL_SOURCE,
        "note": "Outputs of commercial APIs may carry the providers' terms of use; "
        "this slice is for evaluating routers, not for training models.",
        "build_command": command,
        "built_on": datetime.date.today().isoformat(),
        "selection": f"prompts whose sha256(id) % 100 < {TEST_PERCENT} "
        "(trainer.pretrain.split_by_id), ids as in the routing matrix: <task>/<n>",
        "tokenizer": "smartllm.Embedder.count_tokens (bundled all-MiniLM-L6-v2 "
        "WordPiece, no special tokens, no truncation)",
        "grader": "trainer.matrix.grading.grade(task, output, gold)",
        "tasks": dict(sorted(Counter(p["task"] for p in prompts).items())),
        "prompts": len(prompts),
        "models": models,
    }


def print_summary(provenance: dict[str, Any], path: Path) -> None:
    print(f"wrote {provenance['prompts']} prompts to {path} "
          f"({path.stat().st_size / 2**20:.2f} MiB); tasks {provenance['tasks']}")
    for model, entry in provenance["models"].items():
        print(f"  {model:58} prompts {entry['prompts']:4d} accuracy {entry['accuracy']:.3f}")


if __name__ == "__main__":
    raise SystemExit(main())
