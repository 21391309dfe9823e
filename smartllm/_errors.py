"""Exceptions raised by smartllm.

Every exception derives from :class:`SmartLLMError`, so callers can catch the
whole family at once::

    SmartLLMError
     +-- ConfigurationError      bad argument, environment variable or pool entry
     |    +-- UnknownModelError  a model name the pool does not contain
     +-- AssetError             a bundled or installed artefact is missing or damaged
     +-- BudgetExceededError    no allowed model fits the budget under strict=True
     +-- AllModelsFailedError   every allowed model failed; .causes maps model -> error
     +-- LogStoreError          the local log cannot be read or written
     +-- FeedbackError          feedback for an unknown request id or an invalid score
"""

from __future__ import annotations


class SmartLLMError(Exception):
    """Base class of every error raised by smartllm."""


class ConfigurationError(SmartLLMError, ValueError):
    """An argument, environment variable or pool entry is invalid."""


class UnknownModelError(ConfigurationError, KeyError):
    """A model name is not in the client's pool."""

    def __str__(self) -> str:
        # KeyError quotes its message; show it as written.
        return str(self.args[0]) if self.args else ""


class AssetError(SmartLLMError):
    """A bundled or installed artefact (ONNX file, tokenizer, router) is unusable."""


class BudgetExceededError(SmartLLMError):
    """No allowed model fits the budget and the call asked for strict=True."""


class AllModelsFailedError(SmartLLMError):
    """Every allowed model failed; ``causes`` maps each model to its error."""

    def __init__(self, message: str, causes: dict[str, BaseException]) -> None:
        super().__init__(message)
        self.causes = causes


class LogStoreError(SmartLLMError):
    """The local log database cannot be opened, read or migrated."""


class FeedbackError(SmartLLMError, ValueError):
    """Feedback names an unknown request id or carries an invalid score."""
