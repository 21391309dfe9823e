"""Pool resolution: router columns, like= priors and prices."""

from __future__ import annotations

import json

import pytest

from smartllm import ConfigurationError
from smartllm._paths import asset_path
from smartllm._pool import resolve_pool


@pytest.fixture(scope="module")
def bundled() -> tuple[list[str], dict]:
    manifest = json.loads(asset_path("router.json").read_text(encoding="utf-8"))
    return manifest["models"], manifest["prices"]


def test_like_may_name_a_new_pool_model(bundled):
    """like= pointing at another new pool model shares that model's prior."""
    models, prices = bundled
    entries = {
        "openai/gpt-4o-mini": {"api_base": "http://127.0.0.1:1/v1", "api_key": "k"},
        "my-new-model": {"like": "openai/gpt-4o-mini"},
    }
    pool = {m.name: m for m in resolve_pool(entries, models, prices)}
    mini, new = pool["openai/gpt-4o-mini"], pool["my-new-model"]
    assert mini.cold_start
    assert new.cold_start
    assert new.column == mini.column
    assert new.prior == "like:openai/gpt-4o-mini"
    assert new.price.input_per_token == mini.price.input_per_token
    assert new.price.output_per_token == mini.price.output_per_token


def test_like_cycle_is_rejected(bundled):
    """Two new models that name each other in like= raise ConfigurationError."""
    models, prices = bundled
    entries = {
        "a-model": {"like": "b-model", "price": {"input_per_token": 1e-6, "output_per_token": 1e-6}},
        "b-model": {"like": "a-model", "price": {"input_per_token": 1e-6, "output_per_token": 1e-6}},
    }
    with pytest.raises(ConfigurationError, match="leads back"):
        resolve_pool(entries, models, prices)


def test_unknown_like_is_rejected(bundled):
    """like= naming a model neither the router nor the pool has names the choices."""
    models, prices = bundled
    entries = {"my-model": {"like": "nowhere/model", "price": {"input_per_token": 1e-6, "output_per_token": 1e-6}}}
    with pytest.raises(ConfigurationError, match="nowhere/model"):
        resolve_pool(entries, models, prices)


def test_router_model_keeps_its_column(bundled):
    """A pool model the router knows uses its own column, even with like=."""
    models, prices = bundled
    entries = {models[0]: {"like": models[1]}}
    (model,) = resolve_pool(entries, models, prices)
    assert model.column == 0
    assert not model.cold_start
