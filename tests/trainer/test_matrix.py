"""Tests of the committed routing matrix, its loader and the matrix build."""

import gzip
import importlib.util
import json
import os
import shutil
import zipfile

# litellm downloads its price map at import time unless this is set first.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

import numpy as np
import pytest

from trainer.matrix import DEFAULT_MATRIX_DIR, DEFAULT_POOL, ModelSpec, load_matrix
from trainer.matrix.build import build_matrix
from trainer.matrix.dataset import read_shard

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def matrix():
    return load_matrix()


@pytest.fixture(scope="module")
def provenance():
    return json.loads((DEFAULT_MATRIX_DIR / "provenance.json").read_text())


def test_shapes(matrix):
    """Every array has one row per prompt and one column per model."""
    n, k = len(matrix.ids), len(matrix.models)
    assert n == 1319 + 721 + 800 + 12032
    assert matrix.embeddings.shape == (n, 384)
    assert matrix.quality.shape == (n, k)
    assert matrix.input_tokens.shape == (n,)
    assert matrix.output_tokens.shape == (n, k)
    assert matrix.cost.shape == (n, k)
    assert len(matrix.texts) == n
    assert matrix.tasks.shape == (n,)


def test_dtypes(matrix):
    """Embeddings are float32, quality and cost float64, token counts int64."""
    assert matrix.embeddings.dtype == np.float32
    assert matrix.quality.dtype == np.float64
    assert matrix.cost.dtype == np.float64
    assert matrix.input_tokens.dtype == np.int64
    assert matrix.output_tokens.dtype == np.int64


def test_missing_entries_aligned(matrix):
    """NaN quality, -1 output tokens and NaN cost mark exactly the same entries."""
    missing = np.isnan(matrix.quality)
    assert missing.any()
    assert np.array_equal(missing, matrix.output_tokens == -1)
    assert np.array_equal(missing, np.isnan(matrix.cost))


def test_quality_is_binary(matrix):
    """Every present quality value is 0 or 1."""
    present = matrix.quality[~np.isnan(matrix.quality)]
    assert set(np.unique(present)) == {0.0, 1.0}


def test_token_counts_valid(matrix):
    """Input tokens are positive and present output tokens are non-negative."""
    assert (matrix.input_tokens > 0).all()
    present = matrix.output_tokens[matrix.output_tokens != -1]
    assert (present >= 0).all()


def test_ids_unique(matrix):
    """Prompt ids are unique."""
    assert len(set(matrix.ids.tolist())) == len(matrix.ids)


def test_ids_match_tasks(matrix):
    """Each id starts with its source: gsm8k/, math-l5/, crux/ or mmlu-pro/."""
    for prompt_id, task in zip(matrix.ids, matrix.tasks, strict=True):
        assert prompt_id.split("/")[0] == task.split(":")[0]


def test_task_sizes(matrix):
    """The matrix contains every question of the four benchmarks."""
    tasks = matrix.tasks.tolist()
    assert tasks.count("gsm8k") == 1319
    assert tasks.count("math-l5") == 721
    assert tasks.count("crux") == 800
    assert sum(t.startswith("mmlu-pro:") for t in tasks) == 12032


def test_cost_recomputed(matrix):
    """Cost equals input tokens x input price + output tokens x output price."""
    for column, model_id in enumerate(matrix.models):
        price = matrix.prices[model_id]
        present = matrix.output_tokens[:, column] != -1
        expected = (
            matrix.input_tokens[present] * price["input_cost_per_token"]
            + matrix.output_tokens[present, column] * price["output_cost_per_token"]
        )
        np.testing.assert_allclose(matrix.cost[present, column], expected, rtol=1e-12)


def test_embeddings_normalised(matrix):
    """Embeddings have unit L2 norm up to float16 rounding."""
    norms = np.linalg.norm(matrix.embeddings, axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-2)


def test_input_tokens_match_embedder(matrix):
    """Stored input tokens equal the bundled tokenizer's untruncated count."""
    from smartllm import Embedder

    rows = np.linspace(0, len(matrix.ids) - 1, 50).astype(int)
    counts = Embedder().count_tokens([matrix.texts[i] for i in rows])
    assert np.array_equal(counts, matrix.input_tokens[rows])


def test_embeddings_match_embedder(matrix):
    """Stored embeddings equal the bundled embedder's output up to float16 rounding."""
    from smartllm import Embedder

    rows = np.linspace(0, len(matrix.ids) - 1, 20).astype(int)
    vectors = Embedder().embed([matrix.texts[i] for i in rows])
    np.testing.assert_allclose(matrix.embeddings[rows], vectors, atol=2e-3)


def test_default_pool_size(matrix):
    """The default pool has six or more models from three or more providers."""
    providers = {matrix.prices[m]["provider"] for m in DEFAULT_POOL}
    developers = {matrix.prices[m]["developer"] for m in DEFAULT_POOL}
    assert len(DEFAULT_POOL) >= 6
    assert matrix.default_pool == list(DEFAULT_POOL)
    assert len(providers) >= 3
    assert len(developers) >= 3


def test_default_pool_price_span(matrix):
    """Per-token prices in the default pool span at least 30x."""
    input_prices = [matrix.prices[m]["input_cost_per_token"] for m in DEFAULT_POOL]
    output_prices = [matrix.prices[m]["output_cost_per_token"] for m in DEFAULT_POOL]
    assert max(input_prices) / min(input_prices) >= 30
    assert max(output_prices) / min(output_prices) >= 30


def test_default_pool_coverage(matrix):
    """Each pool model has a result on at least 95% of the prompts."""
    for model_id in DEFAULT_POOL:
        column = matrix.model_index(model_id)
        coverage = np.mean(~np.isnan(matrix.quality[:, column]))
        assert coverage >= 0.95, f"{model_id} covers {coverage:.3f}"


def test_prices_have_sources(matrix):
    """Every price names its source and a litellm version or a date."""
    for model_id, price in matrix.prices.items():
        assert price["source"], model_id
        assert price.get("litellm_version") or price.get("date"), model_id


def test_grader_agreement_recorded(provenance):
    """Every enforced grader check is within 1.5 points of the published accuracy."""
    enforced = [row for row in provenance["grader_agreement"] if row["enforced"]]
    assert len(enforced) >= 6
    for row in enforced:
        assert abs(row["difference"]) <= 1.5, row


def test_file_sizes():
    """No committed file exceeds 5 MiB and the folder stays under 30 MiB."""
    sizes = {p.name: p.stat().st_size for p in DEFAULT_MATRIX_DIR.iterdir()}
    assert max(sizes.values()) <= 5 * MiB
    assert sum(sizes.values()) <= 30 * MiB


def test_select_models(matrix):
    """select_models keeps the requested columns in the requested order."""
    chosen = [DEFAULT_POOL[1], DEFAULT_POOL[0]]
    subset = matrix.select_models(chosen)
    assert subset.models == chosen
    np.testing.assert_array_equal(
        subset.quality[:, 0], matrix.quality[:, matrix.model_index(chosen[0])]
    )
    assert subset.cost.shape == (len(matrix.ids), 2)


def test_unknown_model_raises(matrix):
    """model_index raises KeyError naming the unknown id."""
    with pytest.raises(KeyError, match="no-such-model"):
        matrix.model_index("no-such-model")


def test_load_from_copied_folder(tmp_path, matrix):
    """The loader reads a copy of the folder with nothing else around it."""
    copy = tmp_path / "matrix"
    shutil.copytree(DEFAULT_MATRIX_DIR, copy)
    loaded = load_matrix(copy)
    assert loaded.models == matrix.models
    assert np.array_equal(loaded.ids, matrix.ids)


def test_missing_folder_raises(tmp_path):
    """Loading an empty folder raises FileNotFoundError with the rebuild hint."""
    with pytest.raises(FileNotFoundError, match="build_matrix"):
        load_matrix(tmp_path)


def test_shard_model_mismatch_raises(provenance):
    """A shard whose model columns differ from provenance.json is rejected."""
    shard = provenance["shards"][0]
    with pytest.raises(ValueError, match="model columns"):
        read_shard(DEFAULT_MATRIX_DIR, shard, ["other-model"])


# Build tests on a tiny data folder in the upstream layouts.
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


def _tiny_models():
    return [
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


needs_litellm = pytest.mark.skipif(
    importlib.util.find_spec("litellm") is None,
    reason="the matrix build needs litellm for prices",
)


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
    provenance = build_matrix(
        data_dir, out, build_command="test", models=_tiny_models()
    )
    return out, provenance


@needs_litellm
def test_build_row_count(built):
    """Every question of every source becomes one row."""
    out, provenance = built
    matrix = load_matrix(out)
    assert len(matrix) == 3 + 2 + 2 + 3
    assert provenance["n_prompts"] == 10


@needs_litellm
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


@needs_litellm
def test_build_missing_stays_missing(built):
    """A model without results for a source has NaN quality and -1 tokens there."""
    matrix = load_matrix(built[0])
    weak = matrix.model_index("gpt-4o-mini-2024-07-18")
    gsm = matrix.tasks == "gsm8k"
    assert not np.isnan(matrix.quality[gsm, weak]).any()
    assert np.isnan(matrix.quality[~gsm, weak]).all()
    assert (matrix.output_tokens[~gsm, weak] == -1).all()
    assert np.isnan(matrix.cost[~gsm, weak]).all()


@needs_litellm
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


@needs_litellm
def test_build_agreement_rows(built):
    """The agreement table records grader and upstream accuracy per file."""
    rows = built[1]["grader_agreement"]
    weak = [r for r in rows if r["file"] == "weak"]
    assert len(weak) == 1
    assert weak[0]["grader_accuracy"] == 33.33
    assert weak[0]["upstream_accuracy"] == 33.33


@needs_litellm
def test_build_is_reproducible(built, data_dir, tmp_path):
    """A second build of the same data writes byte-identical shard files."""
    out, _ = built
    again = tmp_path / "again"
    build_matrix(data_dir, again, build_command="test", models=_tiny_models())
    for path in sorted(out.glob("*.npz")) + sorted(out.glob("*.jsonl.gz")):
        assert path.read_bytes() == (again / path.name).read_bytes(), path.name


@needs_litellm
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
