"""smartllm: an in-process LLM router.

``import smartllm`` loads neither litellm nor an ONNX session: both are
created on first use.
"""

from ._client import Client
from ._embedder import Embedder
from ._errors import (
    AllModelsFailedError,
    AssetError,
    BudgetExceededError,
    ConfigurationError,
    FeedbackError,
    LogStoreError,
    SmartLLMError,
    UnknownModelError,
)
from ._paths import data_dir
from ._stream import AsyncStreamResponse, StreamResponse
from ._types import Response, RoutingDecision
from ._version import __version__

__all__ = [
    "AllModelsFailedError",
    "AssetError",
    "AsyncStreamResponse",
    "BudgetExceededError",
    "Client",
    "ConfigurationError",
    "Embedder",
    "FeedbackError",
    "LogStoreError",
    "Response",
    "RoutingDecision",
    "SmartLLMError",
    "StreamResponse",
    "UnknownModelError",
    "__version__",
    "data_dir",
]
