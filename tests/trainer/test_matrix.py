"""Tests of the committed routing matrix and its loader."""

import json
import shutil

import numpy as np
import pytest

from trainer.matrix import DEFAULT_MATRIX_DIR, DEFAULT_POOL, load_matrix
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
