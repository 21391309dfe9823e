"""ONNX export: numpy parity, onnxruntime round trip and the router.json contract."""

import hashlib
import json

import numpy as np
import onnx
import onnxruntime
import pytest
from conftest import MODELS, simulate_logs

from trainer import RouterTrainer

PRICES = {
    "source": "test table",
    "date": "2025-01-01",
    "models": {
        name: {"input": 1e-7 * (i + 1), "output": 4e-7 * 10**i}
        for i, name in enumerate(MODELS)
    },
}


@pytest.fixture(scope="module")
def logs():
    return simulate_logs(1500, seed=2, n_features=12)


@pytest.fixture(scope="module")
def trainer(logs):
    X, chosen, propensity, quality, cost = logs
    tokens = cost / np.array([4e-7, 4e-6, 4e-5])[chosen]
    trainer = RouterTrainer(MODELS, random_state=0, hidden=(16, 8), epochs=5)
    return trainer.fit(X, chosen, quality, cost, propensity, output_tokens=tokens)


@pytest.fixture(scope="module")
def exported(trainer, tmp_path_factory):
    directory = tmp_path_factory.mktemp("router")
    metadata = {
        "embedder_sha256": "ab" * 32,
        "features": {"embedding": "test", "extra": ["log_prompt_length"]},
        "prices": PRICES,
        "metrics": {"test_regret": 0.01},
    }
    trainer.export(directory, metadata=metadata)
    return directory


def run_onnx(directory, X, lam):
    session = onnxruntime.InferenceSession(
        str(directory / "router.onnx"), providers=["CPUExecutionProvider"]
    )
    names = ["logits", "quality", "output_tokens"]
    return dict(zip(names, session.run(names, {"embedding": X, "lam": lam})))


def test_onnx_logits_match_numpy(trainer, exported, logs):
    """ONNX logits equal decision_function within 1e-5 at grid, mid and clamped λ."""
    X = logs[0][:200]
    lam = np.random.default_rng(0).choice([0.0, 0.5, 2.0, 10.0, 555.0, 1e4, 5e4], 200)
    outputs = run_onnx(exported, X, lam.astype(np.float32))
    expected = trainer.decision_function(X, lam)
    assert np.max(np.abs(outputs["logits"] - expected)) <= 1e-5


def test_onnx_outcomes_match_numpy(trainer, exported, logs):
    """ONNX quality and token outputs equal the fitted outcome model."""
    X = logs[0][:200]
    outputs = run_onnx(exported, X, np.zeros(200, dtype=np.float32))
    expected = trainer.outcome_model_.predict(X)
    assert np.max(np.abs(outputs["quality"] - expected["quality"])) <= 1e-5
    assert outputs["quality"].min() >= 0.0
    assert outputs["quality"].max() <= 1.0
    np.testing.assert_allclose(
        outputs["output_tokens"], expected["output_tokens"], rtol=1e-4, atol=1e-2
    )


def test_onnx_graph_contract(exported, logs):
    """The graph uses opset 17 with inputs embedding and lam and three outputs."""
    model = onnx.load(exported / "router.onnx")
    assert model.opset_import[0].version == 17
    assert [i.name for i in model.graph.input] == ["embedding", "lam"]
    assert [o.name for o in model.graph.output] == [
        "logits",
        "quality",
        "output_tokens",
    ]
    outputs = run_onnx(exported, logs[0][:3], np.ones(3, dtype=np.float32))
    assert outputs["logits"].shape == (3, len(MODELS))


def test_router_json_fields(trainer, exported):
    """router.json records the contract fields, caller metadata and the ONNX hash."""
    document = json.loads((exported / "router.json").read_text())
    onnx_hash = hashlib.sha256((exported / "router.onnx").read_bytes()).hexdigest()
    assert document["format_version"] == 1
    assert document["models"] == MODELS
    assert document["lambda_grid"] == [float(v) for v in trainer.lambda_grid_]
    assert document["lambda_units"] == "quality points per USD"
    assert document["input_dim"] == 12
    assert document["embedder_sha256"] == "ab" * 32
    assert document["features"]["extra"] == ["log_prompt_length"]
    assert document["prices"] == PRICES
    assert document["training_data_fingerprint"] == trainer.training_data_fingerprint_
    assert document["metrics"]["test_regret"] == 0.01
    assert document["onnx_sha256"] == onnx_hash
    assert document["created_by"].startswith("smartllm trainer ")
    assert document["output_tokens_source"] == "fitted"


def test_fingerprint_changes_with_data(trainer, logs):
    """The training data fingerprint changes when one quality value changes."""
    X, chosen, propensity, quality, cost = logs
    changed = quality.copy()
    changed[0] = 1.0 - changed[0]
    other = RouterTrainer(MODELS, random_state=0, epochs=1)
    other.fit(X, chosen, changed, cost, propensity)
    assert other.training_data_fingerprint_ != trainer.training_data_fingerprint_


def test_tokens_derived_from_cost_and_prices(logs, tmp_path):
    """Without output_tokens the token output is predicted cost over output price."""
    X, chosen, propensity, quality, cost = logs
    trainer = RouterTrainer(MODELS, random_state=0, hidden=(8,), epochs=2)
    trainer.fit(X, chosen, quality, cost, propensity)
    trainer.export(tmp_path, metadata={"prices": PRICES})
    outputs = run_onnx(tmp_path, X[:50], np.zeros(50, dtype=np.float32))
    price = np.array([PRICES["models"][name]["output"] for name in MODELS])
    expected = trainer.outcome_model_.predict(X[:50])["cost"] / price
    np.testing.assert_allclose(outputs["output_tokens"], expected, rtol=1e-4, atol=1e-2)
    document = json.loads((tmp_path / "router.json").read_text())
    assert document["output_tokens_source"] == "cost_model_divided_by_output_price"


def test_export_without_tokens_or_prices_fails(logs, tmp_path):
    """Export raises naming the missing price when tokens cannot be derived."""
    X, chosen, propensity, quality, cost = logs
    trainer = RouterTrainer(MODELS, random_state=0, hidden=(8,), epochs=1)
    trainer.fit(X, chosen, quality, cost, propensity)
    with pytest.raises(ValueError, match=r"\['output'\]"):
        trainer.export(tmp_path)


def test_export_rejects_unknown_metadata(trainer, tmp_path):
    """Export rejects metadata keys outside the documented set."""
    with pytest.raises(ValueError, match="unknown keys"):
        trainer.export(tmp_path, metadata={"embedder": "x"})


def test_per_lambda_export_parity(logs, tmp_path):
    """Per-λ networks export with the same parity as the shared trunk."""
    X, chosen, propensity, quality, cost = logs
    trainer = RouterTrainer(
        MODELS, random_state=0, hidden=(8,), epochs=2, per_lambda=True
    )
    trainer.fit(X, chosen, quality, cost, propensity)
    trainer.export(tmp_path, metadata={"prices": PRICES})
    lam = np.full(100, 7.0, dtype=np.float32)
    outputs = run_onnx(tmp_path, X[:100], lam)
    assert (
        np.max(np.abs(outputs["logits"] - trainer.decision_function(X[:100], lam)))
        <= 1e-5
    )
