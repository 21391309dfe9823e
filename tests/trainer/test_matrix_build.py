"""Tests of the matrix build on a tiny data folder in the upstream layouts."""

import gzip
import importlib.util
import json
import os
import zipfile

# litellm downloads its price map at import time unless this is set first.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

import numpy as np
import pytest

from trainer.matrix import ModelSpec, load_matrix
from trainer.matrix.build import build_matrix

if importlib.util.find_spec("litellm") is None:
    pytest.skip("the matrix build needs litellm for prices", allow_module_level=True)

GSM_GOLD = ["# 18", "# 3", "# 70000"]
GSM_OUTPUTS = {
    "strong": ['{"answer": "18"}', '{"answer": "3"}', '{"answer": "$70,000"}'],
    "weak": ['{"answer": "18"}', "no idea", '{"answer": "7"}'],
}
MATH_GOLD = ["\\frac{1}{2}", "-15"]
CRUX_GOLD = ["'abc'", "[1, 2]"]


def _write_gz_json(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        json.dump(value, handle)


def _zeroeval_records(task, golds, outputs, question_key):
    return [
        {
            "id": f"{task}-test-#{index}",
            question_key: f"{task} question {index}",
            "answer": gold,
            "output": [output],
        }
        for index, (gold, output) in enumerate(zip(golds, outputs, strict=True))
    ]


def _mmlu_pro_records(preds):
    return [
        {
            "question_id": 70 + index,
            "question": f"Which option is right in case {index}?",
            "options": ["one", "two", "three"],
            "answer": "B",
            "category": "computer science" if index else "law",
            "pred": pred,
            "model_outputs": f"The answer is ({pred}).",
        }
        for index, pred in enumerate(preds)
    ]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    result_dirs = root / "zeroeval" / "result_dirs"
    for name, outputs in GSM_OUTPUTS.items():
        records = _zeroeval_records("gsm8k-main", GSM_GOLD, outputs, "question")
        _write_gz_json(result_dirs / "gsm" / f"{name}.json.gz", records)
    math = _zeroeval_records("math", MATH_GOLD, ["$\\boxed{0.5}$", "{}"], "problem")
    _write_gz_json(result_dirs / "math-l5" / "strong.json.gz", math)
    crux = _zeroeval_records("crux", CRUX_GOLD, ['{"answer": "abc"}'] * 2, "question")
    _write_gz_json(result_dirs / "crux" / "strong.json.gz", crux)

    summaries = {
        "gsm": [
            {"Model": "strong", "Acc": "100.00"},
            {"Model": "weak", "Acc": "33.33"},
        ],
        "math-l5": [{"Model": "strong", "Acc": "50.00"}],
        "crux": [{"Model": "strong", "Acc": "50.00"}],
    }
    for folder, rows in summaries.items():
        (result_dirs / f"{folder}.summary.json").write_text(json.dumps(rows))

    eval_results = root / "mmlu-pro" / "eval_results"
    eval_results.mkdir(parents=True)
    archive = eval_results / "model_outputs_strong_5shots.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        records = _mmlu_pro_records(["B", None, "C"]) + ["law"]
        bundle.writestr("model_outputs_strong_5shots.json", json.dumps(records))
    return root


@pytest.fixture(scope="module")
def built(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("matrix")
    models = [
        ModelSpec(
            "gpt-4o-2024-05-13",
            "openai",
            "openai",
            {"gsm": "strong", "math-l5": "strong", "crux": "strong"},
            "strong",
            True,
            "test model",
        ),
        ModelSpec(
            "gpt-4o-mini-2024-07-18",
            "openai",
            "openai",
            {"gsm": "weak"},
            None,
            False,
            "test model",
        ),
    ]
    provenance = build_matrix(data_dir, out, build_command="test", models=models)
    return out, provenance


def test_build_row_count(built):
    """Every question of every source becomes one row."""
    out, provenance = built
    matrix = load_matrix(out)
    assert len(matrix) == 3 + 2 + 2 + 3
    assert provenance["n_prompts"] == 10


def test_build_quality_values(built):
    """Grades follow the grader and MMLU-Pro's pred == answer with null as wrong."""
    matrix = load_matrix(built[0])
    strong = matrix.quality[:, 0]
    ids = matrix.ids.tolist()
    assert strong[ids.index("gsm8k/2")] == 1.0
    assert strong[ids.index("math-l5/0")] == 1.0
    assert strong[ids.index("math-l5/1")] == 0.0
    assert strong[ids.index("crux/0")] == 1.0
    assert strong[ids.index("crux/1")] == 0.0
    assert strong[ids.index("mmlu-pro/70")] == 1.0
    assert strong[ids.index("mmlu-pro/71")] == 0.0
    assert strong[ids.index("mmlu-pro/72")] == 0.0


def test_build_missing_stays_missing(built):
    """A model without results for a source has NaN quality and -1 tokens there."""
    matrix = load_matrix(built[0])
    weak = matrix.model_index("gpt-4o-mini-2024-07-18")
    gsm = matrix.tasks == "gsm8k"
    assert not np.isnan(matrix.quality[gsm, weak]).any()
    assert np.isnan(matrix.quality[~gsm, weak]).all()
    assert (matrix.output_tokens[~gsm, weak] == -1).all()
    assert np.isnan(matrix.cost[~gsm, weak]).all()


def test_build_mmlu_pro_shards(built):
    """MMLU-Pro rows are split by subject and keep their lettered options."""
    out, provenance = built
    matrix = load_matrix(out)
    assert "mmlu-pro-computer-science" in provenance["shards"]
    assert "mmlu-pro-law" in provenance["shards"]
    text = matrix.texts[matrix.ids.tolist().index("mmlu-pro/70")]
    assert text.endswith("Options:\nA. one\nB. two\nC. three")
    assert matrix.tasks[matrix.ids.tolist().index("mmlu-pro/71")] == (
        "mmlu-pro:computer science"
    )


def test_build_agreement_rows(built):
    """The agreement table records grader and upstream accuracy per file."""
    rows = built[1]["grader_agreement"]
    weak = [r for r in rows if r["file"] == "weak"]
    assert len(weak) == 1
    assert weak[0]["grader_accuracy"] == 33.33
    assert weak[0]["upstream_accuracy"] == 33.33


def test_build_is_reproducible(built, data_dir, tmp_path):
    """A second build of the same data writes byte-identical shard files."""
    out, _ = built
    again = tmp_path / "again"
    models = [
        ModelSpec(
            "gpt-4o-2024-05-13",
            "openai",
            "openai",
            {"gsm": "strong", "math-l5": "strong", "crux": "strong"},
            "strong",
            True,
            "test model",
        ),
        ModelSpec(
            "gpt-4o-mini-2024-07-18",
            "openai",
            "openai",
            {"gsm": "weak"},
            None,
            False,
            "test model",
        ),
    ]
    build_matrix(data_dir, again, build_command="test", models=models)
    for path in sorted(out.glob("*.npz")) + sorted(out.glob("*.jsonl.gz")):
        assert path.read_bytes() == (again / path.name).read_bytes(), path.name


def test_build_rejects_grader_disagreement(data_dir, tmp_path):
    """The build raises ValueError when a summary figure differs by over 1.5 points."""
    bad = ModelSpec(
        "gpt-4o-2024-05-13",
        "openai",
        "openai",
        {"gsm": "weak"},
        None,
        True,
        "test model",
        {"gsm": "strong"},
    )
    with pytest.raises(ValueError, match="grader disagrees"):
        build_matrix(data_dir, tmp_path / "out", build_command="test", models=[bad])
