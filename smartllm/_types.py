"""Result types returned by the client."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RoutingDecision:
    """The model chosen for a request and everything the choice was based on.

    Costs are predicted US dollars for this request: WordPiece input tokens
    times the input price plus predicted output tokens times the output price.
    Quality is the router's predicted quality in [0, 1].
    """

    model: str
    probabilities: dict[str, float]  # over the allowed models, sums to 1
    predicted_cost: dict[str, float]
    predicted_quality: dict[str, float]
    predicted_output_tokens: dict[str, float]
    input_tokens: int  # WordPiece tokens of all message text
    lam: float  # quality points per USD
    budget: float | None  # USD ceiling, None for no ceiling
    willingness_to_pay: float | None  # USD, None when λ = 0 came from a budget
    propensity: float  # probability of ``model``
    over_budget: bool  # no allowed model fitted the budget; the cheapest was chosen
    session_pinned: bool  # the session's previous model was reused
    policy_version: str
    fallback_order: list[str]  # ``model`` then the other feasible models
    cold_start: list[str]  # allowed models the router was not trained on
    features: Any = field(default=None, repr=False, compare=False)  # (1, d) float32


@dataclass(frozen=True)
class Response:
    """A completed request.

    ``model`` is the model that served the request, which differs from
    ``routing.model`` after a fallback. ``cost`` is in USD, from the token
    usage that the provider reported and the pool's prices.
    """

    text: str
    model: str
    cost: float
    request_id: str
    routing: RoutingDecision
    input_tokens: int
    output_tokens: int
    latency_s: float  # provider time including retries and fallbacks
    fallback_chain: list[str]  # models tried, in order, ending with ``model``
    tokens_estimated: bool = False  # True when the provider reported no usage
    raw: Any = field(default=None, repr=False, compare=False)  # litellm ModelResponse

    @property
    def over_budget(self) -> bool:
        """True when no allowed model fitted the budget and the cheapest served."""
        return self.routing.over_budget
