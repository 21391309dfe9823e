"""Tests of the bundled ONNX embedder against torch reference vectors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import smartllm
from smartllm import AssetError, ConfigurationError, Embedder
from smartllm._embedder import MAX_TOKENS

FIXTURE = Path(__file__).parents[1] / "fixtures" / "embedder_reference.npz"


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(threads=2)


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as data:
        return {key: data[key] for key in data.files}


def test_parity_with_torch_reference(embedder, reference):
    """Every reference text embeds within cosine 0.9999 of the torch vector."""
    texts = [str(t) for t in reference["texts"]]
    vectors = embedder.embed(texts)
    cosine = np.sum(vectors * reference["vectors"], axis=1)
    short = reference["token_counts"] <= MAX_TOKENS - 2
    assert short.sum() >= 45
    assert cosine[short].min() >= 0.9999
    assert cosine.min() >= 0.9999


def test_output_shape_dtype_and_norm(embedder):
    """Rows are float32, 384 wide and L2-normalised."""
    vectors = embedder.embed(["a", "a longer prompt about databases", "¿qué?"])
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_single_string_is_batch_of_one(embedder):
    """A bare string gives the same row as a one-item list."""
    single = embedder.embed("What is the capital of France?")
    batch = embedder.embed(["What is the capital of France?"])
    assert single.shape == (1, 384)
    np.testing.assert_array_equal(single, batch)


def test_batch_padding_matches_single(embedder, reference):
    """Padding a batch to its longest item leaves each row unchanged."""
    texts = [str(t) for t in reference["texts"]]
    batch = embedder.embed(texts)
    one_by_one = np.vstack([embedder.embed([t]) for t in texts])
    assert np.abs(batch - one_by_one).max() < 1e-5


def test_deterministic(embedder):
    """Embedding the same texts twice gives identical bytes."""
    texts = ["same input", "SELECT 1;"]
    assert embedder.embed(texts).tobytes() == embedder.embed(texts).tobytes()


def test_empty_list(embedder):
    """An empty batch returns a (0, 384) array."""
    assert embedder.embed([]).shape == (0, 384)


def test_empty_and_whitespace_text(embedder):
    """Empty and whitespace-only texts embed to the same finite unit vector."""
    vectors = embedder.embed(["", "   ", "\n\t"])
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-6)


def test_long_text_keeps_head_and_tail(embedder):
    """A text past 256 tokens is cut to 256 and its tail still matters."""
    body = "revenue grew in every region last year. " * 200
    batch = embedder.encode([body + "What about cats?"])
    assert batch.input_ids.shape[1] == MAX_TOKENS
    assert batch.token_counts[0] > 1000
    with_tail = embedder.embed([body + "What about cats?"])
    other_tail = embedder.embed([body + "How do I bake bread?"])
    assert float(with_tail[0] @ other_tail[0]) < 0.999


def test_very_long_input(embedder):
    """A one-megabyte prompt embeds without error."""
    vectors = embedder.embed(["lorem ipsum dolor sit amet " * 40_000])
    assert vectors.shape == (1, 384)
    assert np.isfinite(vectors).all()


def test_token_counts_untruncated(embedder):
    """count_tokens counts every word piece, ignoring the 256-token window."""
    counts = embedder.count_tokens(["", "hello world", "word " * 600])
    assert counts.tolist() == [0, 2, 600]


@pytest.mark.parametrize("bad", [None, 3, b"bytes", ["ok", 5], [None]])
def test_non_string_rejected(embedder, bad):
    """Non-string input raises TypeError naming the type."""
    with pytest.raises(TypeError, match="str"):
        embedder.embed(bad)


@pytest.mark.parametrize("threads", [0, -1, 1.5, "2", True])
def test_invalid_thread_count(threads):
    """A thread count that is not a positive integer raises ConfigurationError."""
    with pytest.raises(ConfigurationError, match="threads"):
        Embedder(threads=threads)


def test_thread_count_from_environment(monkeypatch):
    """SMARTLLM_EMBED_THREADS sets the default thread count."""
    monkeypatch.setenv("SMARTLLM_EMBED_THREADS", "1")
    assert Embedder().threads == 1
    monkeypatch.setenv("SMARTLLM_EMBED_THREADS", "many")
    with pytest.raises(ConfigurationError, match="SMARTLLM_EMBED_THREADS"):
        Embedder()


def test_sha256_matches_file(embedder):
    """The recorded sha256 is the file's, and verify() accepts it."""
    from smartllm._paths import file_sha256

    assert embedder.sha256 == file_sha256(embedder.model_path)
    embedder.verify()


def test_damaged_model_names_file(tmp_path):
    """A garbage ONNX file raises AssetError naming the path."""
    bad = tmp_path / "embedder.onnx"
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(AssetError, match=str(bad)):
        Embedder(model_path=bad).embed(["hi"])


def test_missing_model_names_file(tmp_path):
    """A missing ONNX file raises AssetError naming the path."""
    missing = tmp_path / "nothing.onnx"
    with pytest.raises(AssetError, match="nothing.onnx"):
        Embedder(model_path=missing).embed(["hi"])


def test_session_created_lazily():
    """Constructing an Embedder loads neither the tokenizer nor the session."""
    fresh = Embedder()
    assert fresh._session is None
    assert fresh._tokenizer is None


def test_import_is_light():
    """import smartllm loads no litellm, no onnxruntime and no trainer module."""
    code = (
        "import sys, smartllm; "
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('litellm', 'onnxruntime', 'trainer', 'onnx', 'tqdm', 'matplotlib', 'torch')]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


def test_public_surface():
    """__all__ lists exactly the supported public names, all importable."""
    expected = {
        "AllModelsFailedError", "AssetError", "AsyncStreamResponse",
        "BudgetExceededError", "Client", "ConfigurationError", "Embedder",
        "FeedbackError", "LogStoreError", "Response", "RoutingDecision",
        "SmartLLMError", "StreamResponse", "UnknownModelError", "__version__",
        "data_dir",
    }
    assert set(smartllm.__all__) == expected
    for name in smartllm.__all__:
        assert hasattr(smartllm, name), name
