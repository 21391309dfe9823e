"""Build a small, real router artefact for tests and examples.

The graph is linear, not trained: predicted quality is
``sigmoid(X Wq + logit(base_quality))``, predicted output tokens are a
constant per model, and the policy logits are the predicted utility
``scale * (quality - lam * cost_proxy)`` where ``cost_proxy`` is the price of
100 input tokens plus the predicted output tokens. It follows the artefact
contract (inputs ``embedding`` and ``lam``, outputs ``logits``, ``quality``,
``output_tokens``), so the client loads it like a trained router.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .._embedder import Embedder
from .._features import FEATURE_SET
from .._paths import file_sha256
from .._router import BARE_EMBEDDING_FEATURES, SUPPORTED_FEATURES

DEFAULT_LAMBDA_GRID = (0.0, 1.0, 10.0, 100.0, 1000.0)


def build_router(
    directory: str | Path,
    models: Sequence[str],
    *,
    quality: Mapping[str, float] | None = None,
    output_tokens: Mapping[str, float] | float = 200.0,
    prices: Mapping[str, tuple[float, float]] | None = None,
    features: str = FEATURE_SET,
    prompt_weight: float = 0.5,
    scale: float = 20.0,
    seed: int = 0,
    embedder_sha256: str | None = None,
    version: str | None = None,
    extra: Mapping[str, object] | None = None,
) -> Path:
    """Write ``router.onnx`` and ``router.json`` into ``directory``; return it.

    Args:
        models: litellm model ids, in column order.
        quality: base predicted quality per model in (0, 1); default 0.5.
        output_tokens: predicted output tokens, one number or one per model.
        prices: (input, output) USD per token per model, written to the
            manifest's price table.
        features: ``minilm384+shape8/v1`` (392 inputs) or ``minilm384``.
        prompt_weight: scale of the random prompt-dependent quality term.
        scale: multiplier from utility to logits; larger is sharper.
        embedder_sha256: recorded embedder hash; defaults to the bundled one.
        version: value of the manifest's ``version`` key.
        extra: more manifest keys, written last.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    models = list(models)
    count = len(models)
    width = SUPPORTED_FEATURES[features]
    rng = np.random.default_rng(seed)

    base = np.array([(quality or {}).get(m, 0.5) for m in models], dtype=np.float64)
    base = np.clip(base, 1e-4, 1 - 1e-4)
    bias_quality = np.log(base / (1 - base)).astype(np.float32)
    weights_quality = (rng.standard_normal((width, count)) * prompt_weight / math.sqrt(width))
    weights_quality = weights_quality.astype(np.float32)
    if isinstance(output_tokens, Mapping):
        tokens = np.array([output_tokens.get(m, 200.0) for m in models], dtype=np.float32)
    else:
        tokens = np.full(count, float(output_tokens), dtype=np.float32)
    price_table = dict(prices or {})
    cost_proxy = np.array(
        [
            price_table.get(m, (0.0, 0.0))[0] * 100 + price_table.get(m, (0.0, 0.0))[1] * t
            for m, t in zip(models, tokens, strict=True)
        ],
        dtype=np.float32,
    )

    initializers = [
        numpy_helper.from_array(weights_quality, "Wq"),
        numpy_helper.from_array(bias_quality, "bq"),
        numpy_helper.from_array(np.zeros((width, count), np.float32), "Wzero"),
        numpy_helper.from_array(tokens, "tokens"),
        numpy_helper.from_array(cost_proxy, "cost_proxy"),
        numpy_helper.from_array(np.array([-1, 1], dtype=np.int64), "column_shape"),
        numpy_helper.from_array(np.array(scale, dtype=np.float32), "scale"),
    ]
    nodes = [
        helper.make_node("MatMul", ["embedding", "Wq"], ["q_linear"]),
        helper.make_node("Add", ["q_linear", "bq"], ["q_logit"]),
        helper.make_node("Sigmoid", ["q_logit"], ["quality"]),
        helper.make_node("MatMul", ["embedding", "Wzero"], ["zeros"]),
        helper.make_node("Add", ["zeros", "tokens"], ["output_tokens"]),
        helper.make_node("Reshape", ["lam", "column_shape"], ["lam_column"]),
        helper.make_node("Mul", ["lam_column", "cost_proxy"], ["penalty"]),
        helper.make_node("Sub", ["quality", "penalty"], ["utility"]),
        helper.make_node("Mul", ["utility", "scale"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "smartllm-test-router",
        [
            helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", width]),
            helper.make_tensor_value_info("lam", TensorProto.FLOAT, ["N"]),
        ],
        [
            helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", count])
            for name in ("logits", "quality", "output_tokens")
        ],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx_path = directory / "router.onnx"
    onnx.save(model, onnx_path)

    manifest: dict[str, object] = {
        "format_version": 1,
        "models": models,
        "lambda_grid": list(DEFAULT_LAMBDA_GRID),
        "lambda_units": "quality points per USD",
        "input_dim": width,
        "features": features,
        "embedder_sha256": embedder_sha256 or Embedder().sha256,
        "prices": {
            "source": "smartllm.testing.build_router",
            "date": "2024-06-01",
            "per_model": {
                m: {"input_per_token": p[0], "output_per_token": p[1]}
                for m, p in price_table.items()
            },
        },
        "training_data_fingerprint": "none: linear test router",
        "metrics": {},
        "onnx_sha256": file_sha256(onnx_path),
        "created_by": "smartllm.testing.build_router",
    }
    if version is not None:
        manifest["version"] = version
    manifest.update(extra or {})
    (directory / "router.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return directory


__all__ = ["BARE_EMBEDDING_FEATURES", "build_router"]
