"""Helpers for testing code that uses smartllm, without API keys or network.

- :class:`OpenAIServer`: an OpenAI-compatible HTTP server on 127.0.0.1 with
  canned answers, streaming and failure injection.
- :func:`build_router`: writes a small but real ``router.onnx`` and
  ``router.json`` for any pool of model names (needs the ``onnx`` package).

Neither is imported by ``import smartllm``.
"""

from .openai_server import FailureSpec, OpenAIServer, RecordedRequest
from .router import build_router

__all__ = ["FailureSpec", "OpenAIServer", "RecordedRequest", "build_router"]
