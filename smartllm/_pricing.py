"""Per-token prices of the models in a pool, in US dollars.

A price comes from, in order: the pool entry's ``price`` key, litellm's model
cost map, then the ``prices`` table of ``router.json``. The predicted cost of a
request is ``input_tokens * input_per_token + output_tokens * output_per_token``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import ConfigurationError

logger = logging.getLogger(__name__)

# The JSON file that litellm ships and loads when LITELLM_LOCAL_MODEL_COST_MAP is
# set. Reading it directly prices a pool without the 3-5 s import of litellm.
_LITELLM_COST_FILE = "model_prices_and_context_window_backup.json"

_cost_map_lock = threading.Lock()
_cost_map_cache: dict[str, Any] | None = None


@dataclass(frozen=True)
class Price:
    """USD per input token and per output token, and where the numbers came from."""

    input_per_token: float
    output_per_token: float
    source: str

    def cost(self, input_tokens: float, output_tokens: float) -> float:
        """Return the USD cost of a request with these token counts."""
        return input_tokens * self.input_per_token + output_tokens * self.output_per_token

    @property
    def blended(self) -> float:
        """Input plus output price per token, used to compare models by price."""
        return self.input_per_token + self.output_per_token


def parse_user_price(model: str, value: object) -> Price:
    """Validate a pool entry's ``price`` and return it per token.

    Accepted forms are ``{"input_per_token": x, "output_per_token": y}`` and
    ``{"input_per_million": x, "output_per_million": y}``, in USD.
    """
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"price for {model!r} is {type(value).__name__}, expected a dict such as "
            '{"input_per_million": 0.15, "output_per_million": 0.6}'
        )
    keys = set(value)
    if keys == {"input_per_token", "output_per_token"}:
        scale = 1.0
        names = ("input_per_token", "output_per_token")
    elif keys == {"input_per_million", "output_per_million"}:
        scale = 1e-6
        names = ("input_per_million", "output_per_million")
    else:
        raise ConfigurationError(
            f"price for {model!r} has keys {sorted(keys)}; use exactly "
            "input_per_token and output_per_token, or input_per_million and "
            "output_per_million (USD)"
        )

    numbers = []
    for name in names:
        number = value[name]
        if (
            isinstance(number, bool)
            or not isinstance(number, (int, float))
            or not math.isfinite(number)
            or number < 0
        ):
            raise ConfigurationError(
                f"price for {model!r} has {name}={number!r}; pass a finite number "
                "of US dollars >= 0"
            )
        numbers.append(float(number) * scale)
    return Price(numbers[0], numbers[1], "user")


def litellm_cost_map() -> dict[str, Any]:
    """Return litellm's model cost map without importing litellm when possible.

    When litellm is already imported, its live ``litellm.model_cost`` is used, so
    models added with ``litellm.register_model`` are priced. Otherwise the JSON
    file bundled in the litellm package is read once and cached.
    """
    module = sys.modules.get("litellm")
    if module is not None and isinstance(getattr(module, "model_cost", None), dict):
        return module.model_cost

    global _cost_map_cache
    with _cost_map_lock:
        if _cost_map_cache is None:
            _cost_map_cache = _read_bundled_cost_map()
        return _cost_map_cache


def _read_bundled_cost_map() -> dict[str, Any]:
    spec = importlib.util.find_spec("litellm")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / _LITELLM_COST_FILE
        if path.is_file():
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                logger.warning("cannot read litellm prices from %s: %s", path, exc)
    logger.warning("litellm's price file was not found; only pool and router prices apply")
    return {}


def litellm_price(model: str, cost_map: Mapping[str, Any] | None = None) -> Price | None:
    """Return litellm's price for a model id, or None when litellm lacks it.

    The id is looked up as given, then without its provider prefix
    (``openai/gpt-4o-mini`` is listed as ``gpt-4o-mini``).
    """
    table = litellm_cost_map() if cost_map is None else cost_map
    candidates = [model]
    if "/" in model:
        candidates.append(model.split("/", 1)[1])
    for name in candidates:
        entry = table.get(name)
        if not isinstance(entry, Mapping):
            continue
        input_price = entry.get("input_cost_per_token")
        output_price = entry.get("output_cost_per_token")
        if isinstance(input_price, (int, float)) and isinstance(output_price, (int, float)):
            return Price(float(input_price), float(output_price), f"litellm:{name}")
    return None


def router_price(model: str, prices: Mapping[str, Any]) -> Price | None:
    """Return the price recorded for a model in ``router.json``, or None."""
    per_model = prices.get("per_model") if isinstance(prices, Mapping) else None
    entry = per_model.get(model) if isinstance(per_model, Mapping) else None
    if not isinstance(entry, Mapping):
        return None
    try:
        return Price(
            float(entry["input_per_token"]),
            float(entry["output_per_token"]),
            f"router.json:{prices.get('source', 'unknown')}",
        )
    except (KeyError, TypeError, ValueError):
        return None


def ensure_local_cost_map() -> None:
    """Keep litellm from fetching its price map over the network on import."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
