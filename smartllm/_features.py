"""Router input features: the prompt embedding plus a few shape signals.

The client and the trainer both call :func:`router_features`, so a router is
served with exactly the columns it was trained on. ``FEATURE_NAMES`` lists
the columns appended after the 384 embedding dimensions; a router records
them in ``router.json`` and the client rejects a router that lists others.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

FEATURE_SET = "minilm384+shape8/v1"
FEATURE_NAMES = (
    "log_tokens",
    "digit_share",
    "symbol_share",
    "has_code",
    "has_math",
    "has_options",
    "line_count",
    "non_ascii_share",
)

_CODE = re.compile(
    r"```|\bdef \w+\(|\breturn\b|\bassert\b|;\s*$|\{\s*$|\bSELECT\b|\bimport \w+|=>|::",
    re.MULTILINE,
)
_MATH = re.compile(r"\\frac|\\sqrt|\\boxed|\$[^$]+\$|\^\{?\d|\b\d+\s*[-+*/^=]\s*\d+")
_OPTIONS = re.compile(r"(?:^|\s)\(?[A-J][).:]\s", re.MULTILINE)


def shape_features(texts: Sequence[str], token_counts: Sequence[int]) -> np.ndarray:
    """Return an (n, 8) float32 array of prompt shape signals, each about unit scale."""
    rows = []
    for text, tokens in zip(texts, token_counts, strict=True):
        length = max(len(text), 1)
        rows.append(
            (
                np.log1p(tokens) / 5.0,
                sum(c.isdigit() for c in text) / length,
                sum(c in "=+-*/^<>(){}[]\\$%" for c in text) / length,
                float(bool(_CODE.search(text))),
                float(bool(_MATH.search(text))),
                float(len(_OPTIONS.findall(text)) >= 3),
                np.log1p(text.count("\n")) / 3.0,
                sum(ord(c) > 127 for c in text) / length,
            )
        )
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), len(FEATURE_NAMES))


def router_features(
    embeddings: np.ndarray, texts: Sequence[str], token_counts: Sequence[int]
) -> np.ndarray:
    """Concatenate the embeddings with :func:`shape_features`: (n, 392) float32."""
    extra = shape_features(texts, token_counts)
    return np.hstack([np.asarray(embeddings, dtype=np.float32), extra])
