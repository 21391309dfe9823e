"""Export a fitted RouterTrainer as ``router.onnx`` plus ``router.json``.

ONNX graph (opset 17, IR version 8, built from the numpy weights):

- inputs: ``embedding`` float32 (N, d) and ``lam`` float32 (N,), λ in quality
  points per USD;
- ``logits`` float32 (N, K): the policy logits at each row's λ, mixed from the
  two neighbouring grid heads exactly as ``RouterTrainer.decision_function``
  does, with λ clamped to the grid's range;
- ``quality`` float32 (N, K): predicted quality in [0, 1] from the quality
  outcome model fitted on all training rows;
- ``output_tokens`` float32 (N, K): predicted output tokens per model. When fit
  received output token counts this is a fitted linear model. Otherwise it is
  the cost model's USD prediction divided by each model's output price, which
  ignores input tokens and so over-estimates output tokens for long prompts.
  A log-cost outcome model gives ``exp(x W + b) * smearing / price`` there.
  ``router.json`` records which one under ``output_tokens_source``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ._policy import hat_coefficients

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
OPSET = 17
IR_VERSION = 8
PARITY_TOLERANCE = 1e-5
CALLER_KEYS = ("embedder_sha256", "features", "prices", "metrics")


def trainer_version() -> str:
    """Return the installed smartllm version, or the source tree's, or 'unknown'."""
    try:
        return importlib_metadata.version("smartllm")
    except importlib_metadata.PackageNotFoundError:
        pass
    try:
        from smartllm._version import __version__
    except ImportError:
        return "unknown"
    return __version__


def _output_price(prices, model):
    """Return the output price in USD per token of ``model`` from ``prices``."""
    entry = None
    if isinstance(prices, dict) and isinstance(prices.get("models"), dict):
        entry = prices["models"].get(model)
    if not isinstance(entry, dict) or not entry.get("output", 0) > 0:
        raise ValueError(
            f"metadata['prices']['models'][{model!r}]['output'] (USD per output "
            "token, > 0) is missing: output_tokens must be derived from the cost "
            "model because fit received no output_tokens. Pass the prices or refit "
            "with output_tokens."
        )
    return float(entry["output"])


def _outcome_layers(trainer, prices):
    """Return the quality layer, the tokens layer and the token source.

    The quality layer is ``(W, b, link)`` with link "logistic" (sigmoid of
    ``x W + b``) or "clip" (``x W + b`` clipped to [0, 1]). The tokens layer is
    ``(W, b, scale, form)``: "relu" is ``relu(x W + b)``, "exp" is
    ``exp(x W + b) * scale`` and "log1p" is ``relu(exp(x W + b) * scale - 1)``.
    """
    heads = getattr(trainer, "heads_", None)
    model = trainer.outcome_model_
    if heads is not None:
        quality = (heads.quality_coef[:-1], heads.quality_coef[-1], "logistic")
        if heads.tokens_fitted:
            tokens = (
                heads.tokens_coef[:-1],
                heads.tokens_coef[-1],
                heads.tokens_smearing,
                "log1p",
            )
            return quality, tokens, "fitted"
    else:
        quality = (model.quality_coef[1:], model.quality_coef[0], "clip")
    if model.tokens_coef is not None:
        tokens = (model.tokens_coef[1:], model.tokens_coef[0], None, "relu")
        return quality, tokens, "fitted"
    price = np.array([_output_price(prices, name) for name in trainer.models_])
    source = "cost_model_divided_by_output_price"
    if getattr(model, "cost_model", "linear") == "log":
        scale = (model.cost_smearing / price).astype(np.float32)
        coef = model.cost_coef.astype(np.float32)
        return quality, (coef[1:], coef[0], scale, "exp"), source
    coef = (model.cost_coef / price).astype(np.float32)
    return quality, (coef[1:], coef[0], None, "relu"), source


def build_graph(trainer, prices=None):
    """Return the ONNX model and its token source for a fitted trainer."""
    grid = trainer.lambda_grid_
    n_heads, n_models = grid.size, len(trainer.models_)
    d = trainer.n_features_in_
    initializers, nodes = [], []

    def constant(name, value):
        array = np.asarray(value)
        if array.dtype.kind == "f":
            array = array.astype(np.float32)
        initializers.append(numpy_helper.from_array(array, name))
        return name

    def node(op, inputs, output, **attributes):
        nodes.append(helper.make_node(op, inputs, [output], **attributes))
        return output

    centred = node(
        "Sub", ["embedding", constant("feature_mean", trainer.feature_mean_)], "centred"
    )
    hidden = node(
        "Div", [centred, constant("feature_scale", trainer.feature_scale_)], "x_std"
    )
    standardised = hidden
    n_layers = len(trainer.params_) // 2
    for layer in range(n_layers):
        weight = constant(f"W{layer}", trainer.params_[2 * layer])
        bias = constant(f"b{layer}", trainer.params_[2 * layer + 1])
        product = node("MatMul", [hidden, weight], f"matmul{layer}")
        hidden = node("Add", [product, bias], f"dense{layer}")
        if layer < n_layers - 1:
            hidden = node("Relu", [hidden], f"relu{layer}")
    shape = constant("head_shape", np.array([-1, n_heads, n_models], dtype=np.int64))
    heads = node("Reshape", [hidden, shape], "head_logits")

    low, high = constant("lam_min", grid[0]), constant("lam_max", grid[-1])
    clipped = node("Clip", ["lam", low, high], "lam_clipped")
    column = node(
        "Unsqueeze", [clipped, constant("axis1", np.array([1]))], "lam_column"
    )
    coefficients = hat_coefficients(grid)
    names = ("left_slope", "left_offset", "right_slope", "right_offset")
    for name, values in zip(names, coefficients):
        constant(name, values)
    left = node(
        "Add",
        [node("Mul", [column, "left_slope"], "left_scaled"), "left_offset"],
        "left",
    )
    right = node(
        "Add",
        [node("Mul", [column, "right_slope"], "right_scaled"), "right_offset"],
        "right",
    )
    weights = node("Relu", [node("Min", [left, right], "hat_min")], "head_weights")
    weights = node(
        "Unsqueeze", [weights, constant("axis2", np.array([2]))], "head_weights3"
    )
    weighted = node("Mul", [weights, heads], "weighted_heads")
    node("ReduceSum", [weighted, "axis1"], "logits", keepdims=0)

    quality, tokens, token_source = _outcome_layers(trainer, prices)
    quality_raw = node(
        "Add",
        [
            node(
                "MatMul",
                [standardised, constant("quality_W", quality[0])],
                "quality_mm",
            ),
            constant("quality_b", quality[1]),
        ],
        "quality_raw",
    )
    if quality[2] == "logistic":
        node("Sigmoid", [quality_raw], "quality")
    else:
        node(
            "Clip", [quality_raw, constant("zero", 0.0), constant("one", 1.0)], "quality"
        )
    tokens_raw = node(
        "Add",
        [
            node(
                "MatMul", [standardised, constant("tokens_W", tokens[0])], "tokens_mm"
            ),
            constant("tokens_b", tokens[1]),
        ],
        "tokens_raw",
    )
    if tokens[3] == "relu":
        node("Relu", [tokens_raw], "output_tokens")
    elif tokens[3] == "exp":
        exponential = node("Exp", [tokens_raw], "tokens_exp")
        node("Mul", [exponential, constant("tokens_scale", tokens[2])], "output_tokens")
    else:
        exponential = node("Exp", [tokens_raw], "tokens_exp")
        scaled = node(
            "Mul", [exponential, constant("tokens_scale", tokens[2])], "tokens_scaled"
        )
        shifted = node("Sub", [scaled, constant("one_token", 1.0)], "tokens_shifted")
        node("Relu", [shifted], "output_tokens")

    inputs = [
        helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", d]),
        helper.make_tensor_value_info("lam", TensorProto.FLOAT, ["N"]),
    ]
    outputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", n_models])
        for name in ("logits", "quality", "output_tokens")
    ]
    graph = helper.make_graph(nodes, "smartllm_router", inputs, outputs, initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="smartllm-trainer",
        producer_version=trainer_version(),
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model, token_source, tokens


def numpy_outputs(trainer, X, lam, tokens_layer):
    """Return the three graph outputs computed with numpy from the trainer."""
    Xs = (X - trainer.feature_mean_) / trainer.feature_scale_
    heads = getattr(trainer, "heads_", None)
    if heads is not None:
        quality = heads.predict(Xs)["quality"]
    else:
        quality = trainer.outcome_model_.predict(X)["quality"]
    linear = Xs @ tokens_layer[0] + tokens_layer[1]
    if tokens_layer[3] == "relu":
        tokens = np.maximum(linear, 0.0)
    elif tokens_layer[3] == "exp":
        tokens = np.exp(linear) * tokens_layer[2]
    else:
        tokens = np.maximum(np.exp(linear) * tokens_layer[2] - 1.0, 0.0)
    return {
        "logits": trainer.decision_function(X, lam),
        "quality": quality,
        "output_tokens": tokens,
    }


def _probe_inputs(trainer, n_rows=64):
    """Return feature rows around the training mean and λ values across the grid."""
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((n_rows, trainer.n_features_in_))
    X = (trainer.feature_mean_ + noise * trainer.feature_scale_).astype(np.float32)
    grid = trainer.lambda_grid_
    midpoints = (grid[:-1] + grid[1:]) / 2.0
    candidates = np.concatenate([grid, midpoints, [grid[-1] * 2.0]])
    lam = rng.choice(candidates, n_rows).astype(np.float32)
    return X, lam


def check_parity(trainer, onnx_bytes, tokens_layer):
    """Raise RuntimeError unless onnxruntime matches numpy within the tolerance."""
    import onnxruntime

    session = onnxruntime.InferenceSession(
        onnx_bytes, providers=["CPUExecutionProvider"]
    )
    X, lam = _probe_inputs(trainer)
    names = ["logits", "quality", "output_tokens"]
    results = dict(zip(names, session.run(names, {"embedding": X, "lam": lam})))
    expected = numpy_outputs(trainer, X, lam, tokens_layer)
    differences = {}
    for name in names:
        differences[name] = float(np.max(np.abs(results[name] - expected[name])))
        # Token counts are in the thousands, so compare them relative to size.
        if name == "output_tokens":
            differences[name] /= max(1.0, float(np.abs(expected[name]).max()))
    if max(differences.values()) > PARITY_TOLERANCE:
        raise RuntimeError(
            f"ONNX export does not match the numpy forward pass: max abs "
            f"differences {differences} exceed {PARITY_TOLERANCE}."
        )
    return differences


def _metadata_fields(metadata):
    metadata = dict(metadata or {})
    unknown = sorted(set(metadata) - set(CALLER_KEYS))
    if unknown:
        raise ValueError(
            f"metadata has unknown keys {unknown}; "
            f"allowed keys are {list(CALLER_KEYS)}."
        )
    return metadata


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def export_router(trainer, directory, metadata=None):
    """Write ``router.onnx`` and ``router.json`` and return their paths.

    ``metadata`` may hold ``embedder_sha256``, ``features``, ``prices`` and
    ``metrics``, which are copied into router.json. The export raises
    RuntimeError when onnxruntime's outputs differ from numpy's by more than 1e-5.
    """
    fields = _metadata_fields(metadata)
    model, token_source, tokens_layer = build_graph(trainer, fields.get("prices"))
    onnx_bytes = model.SerializeToString()
    differences = check_parity(trainer, onnx_bytes, tokens_layer)

    metrics = dict(fields.get("metrics") or {})
    validation = trainer.validation_value_
    metrics.setdefault("best_epoch", int(trainer.best_epoch_))
    if validation is not None:
        metrics.setdefault("validation_dr_value", [float(v) for v in validation])
    document = {
        "format_version": FORMAT_VERSION,
        "models": list(trainer.models_),
        "lambda_grid": [float(v) for v in trainer.lambda_grid_],
        "lambda_units": "quality points per USD",
        "input_dim": int(trainer.n_features_in_),
        "embedder_sha256": fields.get("embedder_sha256"),
        "features": fields.get("features"),
        "prices": fields.get("prices"),
        "training_data_fingerprint": trainer.training_data_fingerprint_,
        "metrics": metrics,
        "onnx_sha256": _sha256(onnx_bytes),
        "created_by": f"smartllm trainer {trainer_version()}",
        "output_tokens_source": token_source,
        "softmax_temperature": float(trainer.proba_temperature_),
        "policy": {
            "loss": trainer.loss,
            "per_lambda": bool(trainer.per_lambda),
            "hidden": [int(h) for h in trainer.hidden],
            "pseudo_outcomes": trainer.pseudo_outcomes,
            "p_min": float(trainer.p_min),
            "propensity_source": trainer.propensity_source_,
        },
    }
    text = json.dumps(document, indent=2, allow_nan=False)

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    onnx_path, json_path = directory / "router.onnx", directory / "router.json"
    onnx_path.write_bytes(onnx_bytes)
    json_path.write_text(text + "\n", encoding="utf-8")
    logger.info("exported router to %s (parity %s)", directory, differences)
    return onnx_path, json_path
