"""Per-token prices of the matrix models, with the source of each price.

A price comes from litellm's bundled cost map when litellm lists the model id.
Otherwise it comes from another entry of that map that bills the same model
(``PRICE_ALIASES``), or from a list price entered by hand (``LIST_PRICES``).
"""

from __future__ import annotations

import os
from importlib.metadata import version
from typing import Any

__all__ = ["LIST_PRICES", "PRICE_ALIASES", "litellm_cost_map", "resolve_prices"]

# litellm 1.110 lists no direct Anthropic id of Claude 3.x. Its Vertex AI
# entries carry Anthropic's list price per token.
PRICE_ALIASES = {
    "claude-3-5-sonnet-20240620": "vertex_ai/claude-3-5-sonnet@20240620",
    "claude-3-haiku-20240307": "vertex_ai/claude-3-haiku@20240307",
}

# NOTE: entered by hand from Google's published Gemini API list prices for
# prompts of up to 128k tokens; litellm 1.110 no longer lists Gemini 1.5.
LIST_PRICES: dict[str, dict[str, Any]] = {
    "gemini/gemini-1.5-pro": {
        "input_cost_per_token": 1.25e-06,
        "output_cost_per_token": 5.0e-06,
        "source": "Google Gemini API list price, prompts up to 128k tokens "
        "(https://ai.google.dev/pricing)",
        "date": "2024-10-01",
    },
    "gemini/gemini-1.5-flash": {
        "input_cost_per_token": 7.5e-08,
        "output_cost_per_token": 3.0e-07,
        "source": "Google Gemini API list price, prompts up to 128k tokens "
        "(https://ai.google.dev/pricing)",
        "date": "2024-08-12",
    },
}


def litellm_cost_map() -> tuple[dict[str, Any], str]:
    """Return litellm's bundled cost map and the litellm version it ships with.

    ``LITELLM_LOCAL_MODEL_COST_MAP`` is set before the import, so litellm reads
    the map from its own package instead of downloading the latest one.
    """
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import litellm

    cost_map = litellm.model_cost
    try:
        from litellm.litellm_core_utils.get_model_cost_map import (
            get_model_cost_map,
            get_model_cost_map_source_info,
        )
    except ImportError:  # older litellm releases may lack these helpers
        return cost_map, version("litellm")

    # When litellm was imported before the variable was set, model_cost may be
    # the downloaded map. With the variable set, this call reads the bundled one.
    if get_model_cost_map_source_info()["source"] != "local":
        cost_map = get_model_cost_map(url="")
    return cost_map, version("litellm")


def resolve_prices(model_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Look up the input and output price in USD per token of each model.

    Raises:
        KeyError: a model has no litellm entry, alias or list price.
    """
    cost_map, litellm_version = litellm_cost_map()
    prices: dict[str, dict[str, Any]] = {}
    for model_id in model_ids:
        key = model_id if model_id in cost_map else PRICE_ALIASES.get(model_id)
        if key is not None and key in cost_map:
            entry = cost_map[key]
            prices[model_id] = {
                "input_cost_per_token": float(entry["input_cost_per_token"]),
                "output_cost_per_token": float(entry["output_cost_per_token"]),
                "source": f"litellm {litellm_version} bundled model_cost[{key!r}]",
                "litellm_key": key,
                "litellm_version": litellm_version,
            }
        elif model_id in LIST_PRICES:
            prices[model_id] = dict(LIST_PRICES[model_id])
        else:
            raise KeyError(
                f"no price for {model_id!r}: litellm {litellm_version} does not list "
                "it; add an entry to PRICE_ALIASES or LIST_PRICES in "
                "trainer/matrix/prices.py"
            )
    return prices
