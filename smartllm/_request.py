"""Validation of call arguments, and the text the router embeds.

For ``messages=[...]`` the router embeds the system messages followed by the
last user message, separated by a blank line. The embedder keeps the first
128 and the last 126 word pieces of a longer text, so a long system prompt
keeps its start and the user message keeps its end. The input-token count for
the predicted cost covers the text of every message.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._errors import ConfigurationError


@dataclass(frozen=True)
class PreparedRequest:
    """Messages to send and the texts derived from them."""

    messages: list[dict[str, Any]]
    router_text: str  # what the router embeds
    texts: list[str]  # text of every message, for the input-token count
    prompt_sha256: str
    prompt_log_text: str  # stored only with log_prompts=True
    evaluator_prompt: str  # what an evaluator callable receives


def prepare_request(prompt: object, messages: object) -> PreparedRequest:
    """Validate ``prompt`` or ``messages`` (exactly one) and derive the router text."""
    if prompt is not None and messages is not None:
        raise ConfigurationError("pass either prompt or messages, not both")
    if prompt is None and messages is None:
        raise ConfigurationError("pass a prompt string or messages=[...]")

    if prompt is not None:
        if not isinstance(prompt, str):
            raise TypeError(
                f"prompt must be a str, got {type(prompt).__name__} ({prompt!r:.60}); "
                "pass messages=[...] for a conversation"
            )
        if not prompt.strip():
            raise ConfigurationError("prompt is empty or whitespace; pass the request text")
        check_utf8(prompt, "prompt")
        digest = hashlib.sha256(prompt.encode("utf-8")).hexdigest()
        return PreparedRequest(
            [{"role": "user", "content": prompt}], prompt, [prompt], digest, prompt, prompt
        )
    return _prepare_messages(messages)


def _prepare_messages(messages: object) -> PreparedRequest:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise TypeError(
            f"messages must be a list of dicts, got {type(messages).__name__}"
        )
    if not messages:
        raise ConfigurationError("messages is empty; pass at least one user message")

    items: list[dict[str, Any]] = []
    texts: list[str] = []
    system_texts: list[str] = []
    last_user: str | None = None
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise TypeError(f"messages[{i}] is {type(message).__name__}, expected a dict")
        role = message.get("role")
        if not isinstance(role, str):
            raise ConfigurationError(f"messages[{i}] has role={role!r}; pass a str role")
        text = message_text(message.get("content"), i)
        items.append(dict(message))
        texts.append(text)
        if role in ("system", "developer"):
            system_texts.append(text)
        elif role == "user":
            last_user = text

    if last_user is None:
        raise ConfigurationError("messages contains no user message; add one")
    if not last_user.strip():
        raise ConfigurationError("the last user message is empty; pass the request text")

    router_text = "\n\n".join([*system_texts, last_user])
    canonical = json.dumps(items, sort_keys=True, ensure_ascii=False, default=str)
    check_utf8(canonical, "messages")
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return PreparedRequest(items, router_text, texts, digest, canonical, last_user)


def check_utf8(text: str, name: str) -> None:
    """Raise ConfigurationError if ``text`` contains a lone surrogate.

    Lone surrogates (U+D800 to U+DFFF outside a pair) come from bytes decoded
    with ``errors="surrogateescape"`` or from broken JSON. UTF-8 cannot encode
    them, so neither the tokenizer, the log nor the provider could take them.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigurationError(
            f"{name} contains the lone surrogate {text[exc.start]!r} at index {exc.start}, "
            "which UTF-8 cannot encode; decode the source bytes with errors='replace' "
            "or remove the character"
        ) from None


def message_text(content: object, index: int) -> str:
    """Return the text of a message's content: a str or a list of content parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts = []
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "text":
                parts.append(str(part.get("text", "")))
        return "\n".join(parts)
    raise TypeError(
        f"messages[{index}]['content'] is {type(content).__name__}; pass a str or a "
        "list of content parts"
    )


def check_budget(value: object, name: str = "budget") -> float | None:
    """Return a valid budget in USD (None for no ceiling) or raise ConfigurationError."""
    if value is None:
        return None
    number = _as_number(value, name)
    if not math.isfinite(number) or number < 0:
        raise ConfigurationError(
            f"{name}={value!r} is invalid; pass a finite number of US dollars >= 0 "
            f"per request, such as {name}=0.002, or None for no ceiling"
        )
    return number


def check_willingness_to_pay(value: object, name: str = "willingness_to_pay") -> float | None:
    """Return a valid willingness to pay in USD or raise ConfigurationError."""
    if value is None:
        return None
    number = _as_number(value, name)
    if not math.isfinite(number) or number <= 0:
        raise ConfigurationError(
            f"{name}={value!r} is invalid; pass the US dollar value of a perfect "
            f"answer, a finite number > 0 such as {name}=0.05"
        )
    return number


def check_fraction(value: object, name: str, upper: float) -> float:
    """Return a number in [0, upper) or raise ConfigurationError."""
    number = _as_number(value, name)
    if not math.isfinite(number) or not 0.0 <= number < upper:
        raise ConfigurationError(
            f"{name}={value!r} is invalid; pass a number in [0, {upper})"
        )
    return number


def _as_number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError(
            f"{name}={value!r} is {type(value).__name__}; pass a number"
        )
    return float(value)
