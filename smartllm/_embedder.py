"""Prompt embedder: all-MiniLM-L6-v2 run through onnxruntime.

The client and the trainer both call :class:`Embedder`, so a router is always
trained on the same features it is served with.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._errors import AssetError, ConfigurationError
from ._paths import asset_path, file_sha256

if TYPE_CHECKING:
    import onnxruntime
    import tokenizers

__all__ = ["Embedder", "EncodedBatch"]

logger = logging.getLogger(__name__)

ENV_THREADS = "SMARTLLM_EMBED_THREADS"

# all-MiniLM-L6-v2 was trained with a 256-token window. A longer prompt keeps
# its first HEAD_TOKENS word pieces and its last (254 - HEAD_TOKENS): the
# request usually sits at the start and the question at the end.
MAX_TOKENS = 256
HEAD_TOKENS = 128
CLS_ID = 101
SEP_ID = 102
PAD_ID = 0


@dataclass(frozen=True)
class EncodedBatch:
    """Token ids of a batch, padded to its longest item."""

    input_ids: np.ndarray  # (n, L) int64, [CLS] ... [SEP] then padding
    attention_mask: np.ndarray  # (n, L) int64
    token_counts: np.ndarray  # (n,) int64, word pieces before truncation


class Embedder:
    """Embed prompts into L2-normalised 384-dimensional float32 vectors.

    Args:
        threads: onnxruntime intra-op threads. Defaults to the
            ``SMARTLLM_EMBED_THREADS`` environment variable, else to
            ``min(4, os.cpu_count())``.
        model_path: ONNX file to run instead of the bundled one.
        tokenizer_path: ``tokenizer.json`` to use instead of the bundled one.

    The ONNX session is created on the first call to :meth:`embed`, not here.
    Instances are safe to share between threads.
    """

    dim = 384
    max_tokens = MAX_TOKENS

    def __init__(
        self,
        threads: int | None = None,
        model_path: str | os.PathLike[str] | None = None,
        tokenizer_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.threads = _resolve_threads(threads)
        self.model_path = Path(model_path) if model_path else asset_path("embedder.onnx")
        self.tokenizer_path = (
            Path(tokenizer_path) if tokenizer_path else asset_path("tokenizer.json")
        )
        self._custom_model = model_path is not None
        self._lock = threading.Lock()
        self._session: onnxruntime.InferenceSession | None = None
        self._tokenizer: tokenizers.Tokenizer | None = None
        self._sha256: str | None = None

    @property
    def sha256(self) -> str:
        """Hex sha256 of the ONNX file; routers record it to detect a mismatch.

        For the bundled model the value comes from ``embedder.json``, written
        when the asset was built; :meth:`verify` recomputes it from the file.
        """
        if self._sha256 is None:
            if self._custom_model:
                self._sha256 = file_sha256(self.model_path)
            else:
                self._sha256 = str(load_manifest()["onnx_sha256"])
        return self._sha256

    def verify(self) -> None:
        """Raise :class:`AssetError` unless the ONNX file matches its recorded sha256."""
        actual = file_sha256(self._require_file(self.model_path))
        if actual != self.sha256:
            raise AssetError(
                f"embedder file {self.model_path} has sha256 {actual}, expected "
                f"{self.sha256}; the file is damaged: reinstall smartllm"
            )

    def embed(self, texts: Sequence[str] | str) -> np.ndarray:
        """Return an (n, 384) float32 array with one L2-normalised row per text.

        A single string is treated as a batch of one. Texts longer than 256
        word pieces keep their head and tail. Empty or whitespace-only text
        embeds as the special tokens alone.
        """
        return self.embed_encoded(self.encode(texts))

    def embed_encoded(self, batch: EncodedBatch) -> np.ndarray:
        """Embed a batch returned by :meth:`encode`.

        A caller that also needs the token counts tokenises each text once.
        """
        if batch.input_ids.shape[0] == 0:
            return np.zeros((0, self.dim), dtype=np.float32)

        session = self._get_session()
        (vectors,) = session.run(
            ["embedding"],
            {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask},
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode(self, texts: Sequence[str] | str) -> EncodedBatch:
        """Tokenise texts, truncate each to 256 tokens and pad to the longest."""
        items = _check_texts(texts)
        tokenizer = self._get_tokenizer()
        encodings = tokenizer.encode_batch(items, add_special_tokens=False)

        counts = np.array([len(e.ids) for e in encodings], dtype=np.int64)
        rows = [_truncate_head_tail(e.ids) for e in encodings]
        width = max((len(r) for r in rows), default=0)
        input_ids = np.full((len(rows), width), PAD_ID, dtype=np.int64)
        attention_mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = row
            attention_mask[i, : len(row)] = 1
        return EncodedBatch(input_ids, attention_mask, counts)

    def count_tokens(self, texts: Sequence[str] | str) -> np.ndarray:
        """Return the number of word pieces of each text, without truncation."""
        items = _check_texts(texts)
        encodings = self._get_tokenizer().encode_batch(items, add_special_tokens=False)
        return np.array([len(e.ids) for e in encodings], dtype=np.int64)

    def _get_tokenizer(self) -> tokenizers.Tokenizer:
        if self._tokenizer is None:
            with self._lock:
                if self._tokenizer is None:
                    self._tokenizer = _load_tokenizer(self.tokenizer_path)
        return self._tokenizer

    def _get_session(self) -> onnxruntime.InferenceSession:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    self._session = self._create_session()
        return self._session

    def _create_session(self) -> onnxruntime.InferenceSession:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        path = self._require_file(self.model_path)
        try:
            session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises several private types
            raise AssetError(
                f"cannot load the embedder ONNX file {path}: {exc}; the file is "
                "damaged or incompatible: reinstall smartllm"
            ) from exc
        logger.debug("embedder session created from %s, %d threads", path, self.threads)
        return session

    @staticmethod
    def _require_file(path: Path) -> Path:
        if not path.is_file():
            raise AssetError(f"embedder asset {path} is missing: reinstall smartllm")
        return path


def load_manifest() -> dict[str, Any]:
    """Return the bundled ``embedder.json``: model source, sizes and sha256 pins."""
    path = asset_path("embedder.json")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AssetError(
            f"cannot read the embedder manifest {path}: {exc}; reinstall smartllm"
        ) from exc


def _resolve_threads(threads: int | None) -> int:
    if threads is None:
        raw = os.environ.get(ENV_THREADS)
        if raw is None:
            return min(4, os.cpu_count() or 1)
        try:
            threads = int(raw)
        except ValueError:
            raise ConfigurationError(
                f"{ENV_THREADS}={raw!r} is not an integer; set it to a thread count "
                "such as 2, or unset it"
            ) from None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigurationError(
            f"threads={threads!r} is invalid; pass a positive integer such as 2"
        )
    return threads


def _check_texts(texts: Sequence[str] | str) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    if isinstance(texts, (bytes, bytearray)) or not isinstance(texts, Sequence):
        raise TypeError(
            f"texts must be a str or a list of str, got {type(texts).__name__}; "
            "decode bytes first"
        )
    items = list(texts)
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise TypeError(
                f"texts[{i}] is {type(text).__name__} ({text!r:.60}), expected str"
            )
    return items


def _truncate_head_tail(ids: list[int]) -> list[int]:
    room = MAX_TOKENS - 2
    if len(ids) > room:
        ids = ids[:HEAD_TOKENS] + ids[len(ids) - (room - HEAD_TOKENS) :]
    return [CLS_ID, *ids, SEP_ID]


def _load_tokenizer(path: Path) -> tokenizers.Tokenizer:
    import tokenizers

    if not path.is_file():
        raise AssetError(f"tokenizer file {path} is missing: reinstall smartllm")
    try:
        tokenizer = tokenizers.Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
        raise AssetError(
            f"cannot load the tokenizer {path}: {exc}; reinstall smartllm"
        ) from exc

    # The upstream file truncates at 128 and pads every item to 128. Truncation
    # happens in _truncate_head_tail and padding in Embedder.encode instead.
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer
