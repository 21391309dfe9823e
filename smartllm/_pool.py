"""The model pool: litellm parameters, prices and router columns per model.

A pool entry maps a model name to litellm parameters. These keys belong to
smartllm and are removed before the call:

    like    a model the router knows. Its predictions (logit, quality, output
            tokens) serve for this model until a retrained router knows it, and
            its price is used when no other price is found.
    price   {"input_per_token": usd, "output_per_token": usd} or
            {"input_per_million": usd, "output_per_million": usd}
    model   the litellm model id to call, when it differs from the pool name

Every other key (api_base, api_key, timeout, extra_headers, ...) is passed to
``litellm.completion`` unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import logging

from ._errors import ConfigurationError
from ._pricing import Price, litellm_price, parse_user_price, router_price

logger = logging.getLogger(__name__)

SMARTLLM_KEYS = frozenset({"like", "price", "model"})
# Keys the client sets on every call; a pool entry may not override them.
RESERVED_KEYS = frozenset({"messages", "stream", "num_retries", "max_retries"})


@dataclass(frozen=True)
class PoolModel:
    """One model of a resolved pool."""

    name: str
    litellm_model: str
    params: dict[str, Any] = field(repr=False)
    price: Price
    column: int  # column of the router outputs that predicts this model
    cold_start: bool  # True when the router was not trained on this model
    prior: str  # "router", "like:<model>" or "price:<model>"


def normalise_models(models: object) -> dict[str, dict[str, Any]] | None:
    """Validate the ``models`` argument and return it as {name: entry}."""
    if models is None:
        return None
    if isinstance(models, str):
        raise ConfigurationError(
            f"models={models!r} is a str; pass a list of litellm model ids or a dict "
            "of {model: parameters}"
        )
    if isinstance(models, Mapping):
        items = list(models.items())
    elif isinstance(models, Sequence):
        items = [(name, {}) for name in models]
    else:
        raise ConfigurationError(
            f"models is {type(models).__name__}; pass a list of litellm model ids or "
            "a dict of {model: parameters}"
        )
    if not items:
        raise ConfigurationError("models is empty; list at least one model")

    result: dict[str, dict[str, Any]] = {}
    for name, entry in items:
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError(f"model name {name!r} is invalid; use a litellm model id")
        if entry is None:
            entry = {}
        if not isinstance(entry, Mapping):
            raise ConfigurationError(
                f"models[{name!r}] is {type(entry).__name__}; pass a dict of litellm "
                "parameters such as {'api_base': ...}"
            )
        reserved = RESERVED_KEYS & set(entry)
        if reserved:
            raise ConfigurationError(
                f"models[{name!r}] sets {sorted(reserved)}, which the client controls; "
                "remove them"
            )
        if name in result:
            raise ConfigurationError(f"model {name!r} is listed twice")
        result[name] = dict(entry)
    return result


def resolve_pool(
    entries: Mapping[str, Mapping[str, Any]] | None,
    router_models: Sequence[str],
    router_prices: Mapping[str, Any],
    strict_like: bool = True,
) -> list[PoolModel]:
    """Attach a price and a router column to every pool model.

    ``entries`` None means the router's own models with default parameters.
    Raises ConfigurationError for a model without a price, or a ``like`` that
    names a model the router does not know. With ``strict_like`` False, such a
    ``like`` is ignored and the nearest-priced router model serves as the
    prior instead. A retrained router lists only the pool models that had
    enough feedback, so the model a ``like`` names may be missing from it.
    A pool model that the router knows by name never uses its ``like``.
    """
    if entries is None:
        entries = {name: {} for name in router_models}
    columns = {name: i for i, name in enumerate(router_models)}

    known_prices = {}
    for name in router_models:
        price = litellm_price(name) or router_price(name, router_prices)
        if price is not None:
            known_prices[name] = price

    resolved: dict[str, PoolModel] = {}

    def resolve(name: str, visiting: tuple[str, ...]) -> PoolModel:
        if name in resolved:
            return resolved[name]
        entry = entries[name]
        like = entry.get("like")
        if like is not None and like not in columns and like in entries and name not in columns:
            # like= may name another pool model the router does not know: the
            # new model then shares that model's prior.
            if like in visiting:
                raise ConfigurationError(
                    f"models[{name!r}] has like={like!r}, which leads back to "
                    f"{name!r}; point like= at one of {list(router_models)}"
                )
            target = resolve(like, (*visiting, name))
            price = _resolve_price(name, entry, target.price, router_prices)
            model = _pool_model(name, entry, price, target.column, f"like:{like}")
        else:
            model = _resolve_direct(name, entry, like, columns, known_prices,
                                    router_models, router_prices, strict_like)
        resolved[name] = model
        return model

    return [resolve(name, ()) for name in entries]


def _pool_model(
    name: str, entry: Mapping[str, Any], price: Price, column: int, prior: str
) -> PoolModel:
    params = {k: v for k, v in entry.items() if k not in SMARTLLM_KEYS}
    litellm_model = entry.get("model", name)
    if not isinstance(litellm_model, str) or not litellm_model:
        raise ConfigurationError(
            f"models[{name!r}] has model={litellm_model!r}; pass a litellm model id"
        )
    return PoolModel(name, litellm_model, params, price, column, prior != "router", prior)


def _resolve_direct(
    name: str,
    entry: Mapping[str, Any],
    like: str | None,
    columns: Mapping[str, int],
    known_prices: Mapping[str, Price],
    router_models: Sequence[str],
    router_prices: Mapping[str, Any],
    strict_like: bool,
) -> PoolModel:
    if like is not None and like not in columns and not strict_like:
        logger.debug("models[%r]: like=%r is not in the router; using the price", name, like)
        like = None
    if like is not None and like not in columns and name not in columns:
        raise ConfigurationError(
            f"models[{name!r}] has like={like!r}, which neither the router nor the "
            f"pool knows; use one of {list(router_models)}"
        )
    price = _resolve_price(name, entry, known_prices.get(like) if like else None, router_prices)

    if name in columns:
        return _pool_model(name, entry, price, columns[name], "router")
    if like is not None:
        return _pool_model(name, entry, price, columns[like], f"like:{like}")
    nearest = _nearest_price(price, known_prices)
    if nearest is None:
        raise ConfigurationError(
            f"model {name!r} is new to the router and no router model has a "
            f"price to compare with; add like=<one of {list(router_models)}>"
        )
    return _pool_model(name, entry, price, columns[nearest], f"price:{nearest}")


def _resolve_price(
    name: str, entry: Mapping[str, Any], like_price: Price | None, router_prices: Mapping[str, Any]
) -> Price:
    if "price" in entry:
        return parse_user_price(name, entry["price"])
    litellm_model = entry.get("model", name)
    price = litellm_price(name) or (
        litellm_price(litellm_model) if isinstance(litellm_model, str) else None
    )
    price = price or router_price(name, router_prices)
    if price is not None:
        return price
    if like_price is not None:
        return Price(like_price.input_per_token, like_price.output_per_token, "like")
    raise ConfigurationError(
        f"no price is known for model {name!r}: litellm and router.json lack it; add "
        '"price": {"input_per_million": ..., "output_per_million": ...} to its entry'
    )


def _nearest_price(price: Price, known: Mapping[str, Price]) -> str | None:
    if not known:
        return None

    def distance(item: tuple[str, Price]) -> tuple[float, str]:
        other = item[1]
        gap = abs(math.log(max(price.blended, 1e-12)) - math.log(max(other.blended, 1e-12)))
        return gap, item[0]

    return min(known.items(), key=distance)[0]
