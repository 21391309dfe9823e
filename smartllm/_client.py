"""The client: route a request, call the chosen model through litellm, log it."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import sqlite3
import threading
import time
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._calls import (
    CallOutcome,
    RetrySettings,
    acall_with_fallbacks,
    call_with_fallbacks,
    check_choices,
    describe_error,
    secret_values,
)
from ._embedder import Embedder
from ._errors import (
    AllModelsFailedError,
    AssetError,
    BudgetExceededError,
    ConfigurationError,
    LogStoreError,
    UnknownModelError,
)
from ._features import FEATURE_SET, router_features
from ._paths import data_dir
from ._overlap import DEFAULT_MIN_FEEDBACK, feedback_counts
from ._pool import PoolModel, normalise_models, resolve_pool
from ._pricing import ensure_local_cost_map
from ._request import (
    PreparedRequest,
    check_budget,
    check_fraction,
    check_utf8,
    check_willingness_to_pay,
    prepare_request,
)
from ._router import Router, RouterPrediction, RouterSource
from ._sampling import choice_distribution, fallback_order, sample_index
from ._store import LOG_FILE_NAME, LogStore
from ._stream import AsyncStreamResponse, StreamResponse, StreamResult
from ._types import Response, RoutingDecision

logger = logging.getLogger(__name__)

ENV_BUDGET = "SMARTLLM_BUDGET"
ENV_WILLINGNESS_TO_PAY = "SMARTLLM_WILLINGNESS_TO_PAY"
ENV_EXPLORATION = "SMARTLLM_EXPLORATION"
ENV_MIN_EXPLORE = "SMARTLLM_MIN_EXPLORE"
ENV_LOG_PROMPTS = "SMARTLLM_LOG_PROMPTS"
ENV_ROUTER = "SMARTLLM_ROUTER"
ENV_TIMEOUT = "SMARTLLM_TIMEOUT"
ENV_MAX_RETRIES = "SMARTLLM_MAX_RETRIES"

# λ = 1 / DEFAULT_WILLINGNESS_TO_PAY when neither the call nor the client sets
# a budget or a willingness to pay: a perfect answer is worth 5 US cents.
DEFAULT_WILLINGNESS_TO_PAY = 0.05
DEFAULT_EXPLORATION = 0.05
DEFAULT_MIN_EXPLORE = 0.05
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 2
SESSION_CACHE_SIZE = 10_000

# Policy version suffix of requests routed without a usable router output.
DEGRADED_SUFFIX = "+degraded"

# Seconds between two counts of feedback per model for the exploration floor.
FLOOR_RECOUNT_SECONDS = 60.0

# Errors of a log read or write, which must never fail a completion.
_LOG_ERRORS = (sqlite3.Error, OSError, LogStoreError)


@dataclass
class _FloorCount:
    """Models that get the min_explore floor under one router version."""

    mask: np.ndarray  # (K,) bool, in pool order
    counted_at: float  # time.monotonic() of the last count
    settled: bool  # every pool model has reached the threshold


@dataclass(frozen=True)
class _PoolState:
    """A resolved pool for one router version, as arrays in pool order."""

    router: Router
    models: list[PoolModel]
    index: dict[str, int]
    columns: np.ndarray
    input_price: np.ndarray
    output_price: np.ndarray
    cold_start: np.ndarray


@dataclass
class _Call:
    """State of a routed completion, shared by the sync and async paths."""

    request: PreparedRequest
    request_id: str
    decision: RoutingDecision
    state: _PoolState
    order: list[PoolModel]
    routing_ms: float
    stream: bool
    session_id: str | None


class Client:
    """Route each request to a model of a pool, call it through litellm and log it.

    Args:
        models: the pool. None uses the router's own models. A list of litellm
            model ids, or a dict {model: entry} whose entry contains litellm
            parameters (``api_base``, ``api_key``, ...) plus the smartllm keys
            ``like``, ``price`` and ``model`` described in :mod:`smartllm._pool`.
        budget: default per-request ceiling on the predicted cost, in USD.
        willingness_to_pay: default dollar value of a perfect answer; the
            cost sensitivity is λ = 1 / willingness_to_pay.
        exploration: share ε of each choice drawn uniformly from the feasible
            models, in [0, 1). 0 warns, because retraining then cannot learn
            about models the policy never picks.
        min_explore: minimum probability of each feasible cold-start model and,
            once the application sends feedback, of each model with fewer
            explored calls with feedback in the log than router.json's
            ``min_feedback`` (default 100).
        strict: raise BudgetExceededError when no model fits the budget,
            instead of calling the cheapest model.
        log_prompts: store prompt text in the log (off: only its sha256).
        evaluator: callable (prompt, text) -> score in [0, 1], called after
            each completion; the score is stored as feedback with source
            "evaluator".
        random_state: seed or numpy Generator for the model draw.
        router: directory with router.onnx and router.json to use instead of
            the bundled and installed routers.
        timeout: seconds per provider attempt.
        max_retries: retries of a failed attempt on the same model before
            falling back to the next model.
        retry_base_delay: seconds before the first retry, doubled per retry.
        max_retry_delay: longest wait in seconds; a Retry-After header asking
            for more makes the client fall back at once.
        policy_temperature: softmax temperature over the router logits;
            defaults to router.json's ``softmax_temperature``, else 1.0.
        embed_threads: onnxruntime threads of the embedder.
        log_path: SQLite file of the log; defaults to
            ``<data_dir>/log.sqlite3``.

    Environment variables, read when the argument is None:
        ``SMARTLLM_BUDGET``, ``SMARTLLM_WILLINGNESS_TO_PAY``,
        ``SMARTLLM_EXPLORATION``, ``SMARTLLM_MIN_EXPLORE``,
        ``SMARTLLM_LOG_PROMPTS`` (1/true/yes), ``SMARTLLM_ROUTER``,
        ``SMARTLLM_TIMEOUT``, ``SMARTLLM_MAX_RETRIES``,
        ``SMARTLLM_EMBED_THREADS`` and ``SMARTLLM_HOME`` (data directory).
        Provider API keys come from the providers' usual variables
        (``OPENAI_API_KEY``, ``GEMINI_API_KEY``, ...), read by litellm.

    Nothing is loaded here: the router, the embedder session, litellm and the
    log file are opened on first use, so ``Client().feedback(...)`` is cheap.
    """

    def __init__(
        self,
        models: Mapping[str, Mapping[str, Any]] | Iterable[str] | None = None,
        *,
        budget: float | None = None,
        willingness_to_pay: float | None = None,
        exploration: float | None = None,
        min_explore: float | None = None,
        strict: bool = False,
        log_prompts: bool | None = None,
        evaluator: Callable[[str, str], float] | None = None,
        random_state: int | np.random.Generator | None = None,
        router: str | os.PathLike[str] | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        retry_base_delay: float = 0.5,
        max_retry_delay: float = 8.0,
        policy_temperature: float | None = None,
        embed_threads: int | None = None,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        if models is not None and not isinstance(models, (Mapping, list, tuple)):
            models = list(models) if isinstance(models, Iterable) else models
        self._entries = normalise_models(models)
        self.budget = check_budget(_env_float(budget, ENV_BUDGET), "budget")
        self.willingness_to_pay = check_willingness_to_pay(
            _env_float(willingness_to_pay, ENV_WILLINGNESS_TO_PAY), "willingness_to_pay"
        )
        self.exploration = check_fraction(
            _env_float(exploration, ENV_EXPLORATION, DEFAULT_EXPLORATION), "exploration", 1.0
        )
        self.min_explore = check_fraction(
            _env_float(min_explore, ENV_MIN_EXPLORE, DEFAULT_MIN_EXPLORE), "min_explore", 0.5
        )
        if self.exploration == 0:
            warnings.warn(
                "exploration=0: the client always follows the policy, so retraining "
                "cannot learn about models it never tries; use a small value such as 0.05",
                UserWarning,
                stacklevel=2,
            )
        self.strict = bool(strict)
        self.log_prompts = _env_bool(log_prompts, ENV_LOG_PROMPTS)
        if evaluator is not None and not callable(evaluator):
            raise ConfigurationError(
                f"evaluator={evaluator!r} is not callable; pass f(prompt, text) -> score"
            )
        self.evaluator = evaluator
        self.timeout = _check_positive(_env_float(timeout, ENV_TIMEOUT, DEFAULT_TIMEOUT), "timeout")
        retries = _env_int(max_retries, ENV_MAX_RETRIES, DEFAULT_MAX_RETRIES)
        self._retry = RetrySettings(
            max_retries=retries,
            base_delay=_check_positive(retry_base_delay, "retry_base_delay"),
            max_delay=_check_positive(max_retry_delay, "max_retry_delay"),
            rng=random.Random(None if random_state is None else _seed_of(random_state)),
        )
        if policy_temperature is not None:
            policy_temperature = _check_positive(policy_temperature, "policy_temperature")
        self.policy_temperature = policy_temperature
        self._rng = np.random.default_rng(random_state)

        router_dir = router if router is not None else os.environ.get(ENV_ROUTER) or None
        self._embedder = Embedder(threads=embed_threads)
        self._router_dir = Path(router_dir).expanduser() if router_dir else None
        self._routers: RouterSource | None = None
        self._states: dict[str, _PoolState] = {}
        self._floor_cache: dict[str, _FloorCount] = {}
        self._floor_recounting = False
        self._state_lock = threading.Lock()
        self._store = LogStore(Path(log_path) if log_path else data_dir() / LOG_FILE_NAME)
        self._sessions: OrderedDict[str, str] = OrderedDict()
        self._session_lock = threading.Lock()
        self.log_write_failures = 0
        self._log_failing = False
        self._counter_lock = threading.Lock()
        self.router_failures = 0  # requests routed by the degraded price-only choice
        self._degraded_versions: set[str] = set()

    # -- public API -------------------------------------------------------

    def route(
        self,
        prompt: str | None = None,
        *,
        messages: list[dict[str, Any]] | None = None,
        budget: float | None = None,
        willingness_to_pay: float | None = None,
        models: Iterable[str] | None = None,
        exclude: Iterable[str] | None = None,
        session_id: str | None = None,
        max_tokens: int | None = None,
        strict: bool | None = None,
    ) -> RoutingDecision:
        """Choose a model for a request without calling it or writing the log."""
        request = prepare_request(prompt, messages)
        decision, _, _ = self._decide(
            request, budget, willingness_to_pay, models, exclude, session_id,
            max_tokens, strict, request_id="-",
        )
        return decision

    def complete(
        self,
        prompt: str | None = None,
        *,
        messages: list[dict[str, Any]] | None = None,
        budget: float | None = None,
        willingness_to_pay: float | None = None,
        models: Iterable[str] | None = None,
        exclude: Iterable[str] | None = None,
        session_id: str | None = None,
        stream: bool = False,
        strict: bool | None = None,
        **litellm_kwargs: Any,
    ) -> Response | StreamResponse:
        """Route, call the chosen model (falling back on errors) and log the request.

        Extra keyword arguments (``temperature``, ``max_tokens``, ...) go to
        ``litellm.completion``. With ``stream=True`` the result is a
        :class:`StreamResponse` that yields text deltas and writes the log when
        the stream ends or is closed. Raises AllModelsFailedError when every
        feasible model fails, with each model's error in ``causes``.
        """
        call = self._prepare_call(
            prompt, messages, budget, willingness_to_pay, models, exclude,
            session_id, strict, stream, litellm_kwargs,
        )
        start = time.perf_counter()
        try:
            outcome = call_with_fallbacks(
                call.order,
                lambda model: self._invoke(model, call, litellm_kwargs),
                self._retry,
                call.request_id,
            )
        except AllModelsFailedError as exc:
            self._log_failure(call, exc, time.perf_counter() - start)
            raise

        if stream:
            stream_obj, first = outcome.result
            return StreamResponse(
                stream_obj, first, self._stream_finisher(call, outcome, start),
                call.request_id, call.decision, outcome.served.name, outcome.chain,
            )
        return self._finish(call, outcome, start)

    async def acomplete(
        self,
        prompt: str | None = None,
        *,
        messages: list[dict[str, Any]] | None = None,
        budget: float | None = None,
        willingness_to_pay: float | None = None,
        models: Iterable[str] | None = None,
        exclude: Iterable[str] | None = None,
        session_id: str | None = None,
        stream: bool = False,
        strict: bool | None = None,
        **litellm_kwargs: Any,
    ) -> Response | AsyncStreamResponse:
        """Async :meth:`complete`: routing runs in a worker thread, the call on the loop."""
        call = await asyncio.to_thread(
            self._prepare_call,
            prompt, messages, budget, willingness_to_pay, models, exclude,
            session_id, strict, stream, litellm_kwargs,
        )
        start = time.perf_counter()
        try:
            outcome = await acall_with_fallbacks(
                call.order,
                lambda model: self._ainvoke(model, call, litellm_kwargs),
                self._retry,
                call.request_id,
            )
        except AllModelsFailedError as exc:
            self._log_failure(call, exc, time.perf_counter() - start)
            raise

        if stream:
            stream_obj, first = outcome.result
            return AsyncStreamResponse(
                stream_obj, first, self._stream_finisher(call, outcome, start),
                call.request_id, call.decision, outcome.served.name, outcome.chain,
            )
        return self._finish(call, outcome, start)

    def feedback(self, request_id: str, score: float, source: str | None = None) -> None:
        """Record a score in [0, 1] for a logged request; the latest score counts.

        Works from any process that shares the data directory. Raises
        FeedbackError for an unknown request id or a score that is not a
        number in [0, 1].
        """
        self._store.add_feedback(request_id, score, source)
        logger.debug("request %s: feedback %.3f from %s", request_id, score, source)

    def status(self) -> dict[str, Any]:
        """Return log totals: requests, feedback, per-model requests and cost, versions."""
        report = self._store.status()
        try:
            report["policy_version"] = self._router_source().current().version
        except AssetError as exc:
            report["policy_version"] = None
            report["router_error"] = str(exc)
        return report

    def warm_up(self) -> None:
        """Load the router, the embedder session and litellm now instead of on first use."""
        self._pool_state()
        self._embedder.embed(["warm up"])
        self._litellm()

    def close(self) -> None:
        """Close the log's database connections."""
        self._store.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- routing ----------------------------------------------------------

    def _router_source(self) -> RouterSource:
        if self._routers is None:
            self._routers = RouterSource(self._embedder.sha256, self._router_dir)
        return self._routers

    def _pool_state(self) -> _PoolState:
        router = self._router_source().current()
        state = self._states.get(router.version)
        if state is not None:
            return state
        with self._state_lock:
            state = self._states.get(router.version)
            if state is None:
                # An installed (retrained) router may drop the model a like=
                # names, so only the bundled or explicit router checks like=.
                installed = router is self._router_source().installed_router
                pool = resolve_pool(
                    self._entries, router.models, router.prices,
                    strict_like=not installed and "under_explored" not in router.manifest,
                )
                state = _PoolState(
                    router=router,
                    models=pool,
                    index={m.name: i for i, m in enumerate(pool)},
                    columns=np.array([m.column for m in pool], dtype=np.int64),
                    input_price=np.array([m.price.input_per_token for m in pool]),
                    output_price=np.array([m.price.output_per_token for m in pool]),
                    cold_start=np.array([m.cold_start for m in pool], dtype=bool),
                )
                self._states[router.version] = state
                for model in pool:
                    logger.debug(
                        "pool model %s: prior %s, price %s", model.name, model.prior,
                        model.price.source,
                    )
        return state

    def _floored(self, state: _PoolState) -> np.ndarray:
        """Return the models that get the min_explore floor.

        Counting feedback per model scans the log (0.3 to 0.6 s at 100,000
        rows), so it runs once when a router version is first used and then
        in a background thread at most once a minute, while requests use the
        last result. It stops once every pool model reaches the threshold.
        """
        entry = self._floor_cache.get(state.router.version)
        if entry is None:
            return self._count_floor(state).mask
        stale = time.monotonic() - entry.counted_at >= FLOOR_RECOUNT_SECONDS
        if stale and not entry.settled:
            self._recount_floor_in_background(state, entry)
        return entry.mask

    def _count_floor(
        self, state: _PoolState, connection: sqlite3.Connection | None = None
    ) -> _FloorCount:
        under, settled = self._under_explored(state.router, state.models, connection)
        entry = _FloorCount(state.cold_start | under, time.monotonic(), settled)
        self._floor_cache[state.router.version] = entry
        return entry

    def _recount_floor_in_background(self, state: _PoolState, entry: _FloorCount) -> None:
        with self._counter_lock:
            if self._floor_recounting:
                return
            self._floor_recounting = True
            entry.counted_at = time.monotonic()

        def recount() -> None:
            try:
                # A connection of its own, closed here, so the thread leaves none behind.
                uri = f"file:{self._store.path}?mode=ro"
                connection = sqlite3.connect(uri, uri=True, timeout=5.0)
                try:
                    self._count_floor(state, connection)
                finally:
                    connection.close()
            except _LOG_ERRORS as exc:
                logger.debug("feedback recount for the exploration floor failed: %s", exc)
            finally:
                with self._counter_lock:
                    self._floor_recounting = False

        threading.Thread(target=recount, name="smartllm-floor-count", daemon=True).start()

    def _under_explored(
        self,
        router: Router,
        pool: list[PoolModel],
        connection: sqlite3.Connection | None = None,
    ) -> tuple[np.ndarray, bool]:
        """Mark pool models with fewer explored calls with feedback than the threshold.

        Also returns whether every pool model has reached the threshold, after
        which the counts can only stay above it.

        The threshold is router.json's ``min_feedback``, else 100. A model is
        under-explored when router.json lists it under ``under_explored``, or
        when the log holds fewer such calls for it and the application sends
        feedback: an explored call with feedback is logged, or a retrained
        router is installed.
        An application that never sends feedback therefore explores with ε
        alone.
        """
        threshold = router.manifest.get("min_feedback", DEFAULT_MIN_FEEDBACK)
        if isinstance(threshold, bool) or not isinstance(threshold, int):
            threshold = DEFAULT_MIN_FEEDBACK
        listed = router.manifest.get("under_explored")
        listed = set(listed) if isinstance(listed, list) else set()
        counts: dict[str, int] = {}
        if self._store.path.exists():
            try:
                counts = feedback_counts(connection or self._store.connection())
            except _LOG_ERRORS as exc:
                logger.warning(
                    "cannot count feedback per model in %s (%s); treating every "
                    "model as explored", self._store.path, exc,
                )
                counts = {model.name: threshold for model in pool}
        installed = router is self._router_source().installed_router
        if not installed and sum(counts.values()) == 0:
            return np.array([m.name in listed for m in pool], dtype=bool), False
        marked = [m.name in listed or counts.get(m.name, 0) < threshold for m in pool]
        logger.debug(
            "router %s: under-explored models %s (threshold %d)",
            router.version, [m.name for m, flag in zip(pool, marked) if flag], threshold,
        )
        return np.array(marked, dtype=bool), not any(marked)

    def _allowed_mask(
        self, state: _PoolState, models: Iterable[str] | None, exclude: Iterable[str] | None
    ) -> np.ndarray:
        allowed = np.ones(len(state.models), dtype=bool)
        if models is not None:
            names = _name_list(models, "models")
            if not names:
                raise ConfigurationError(
                    "models=[] allows no model; pass at least one pool model or None"
                )
            allowed[:] = False
            allowed[[self._pool_index(state, name, "models") for name in names]] = True
        if exclude is not None:
            for name in _name_list(exclude, "exclude"):
                allowed[self._pool_index(state, name, "exclude")] = False
        if not allowed.any():
            raise ConfigurationError(
                "exclude removes every allowed model; exclude fewer models"
            )
        return allowed

    @staticmethod
    def _pool_index(state: _PoolState, name: str, argument: str) -> int:
        try:
            return state.index[name]
        except KeyError:
            raise UnknownModelError(
                f"{argument} names {name!r}, which is not in the pool "
                f"{sorted(state.index)}; add it to Client(models=...) first"
            ) from None

    def _featurise(self, state: _PoolState, request: PreparedRequest) -> tuple[np.ndarray, int]:
        router_text = request.router_text
        batch = self._embedder.encode([router_text])
        embedding = self._embedder.embed_encoded(batch)
        router_tokens = int(batch.token_counts[0])
        # A plain prompt is its own router text: count it once.
        others = [text for text in request.texts if text != router_text]
        input_tokens = router_tokens * (len(request.texts) - len(others))
        if others:
            input_tokens += int(self._embedder.count_tokens(others).sum())
        if state.router.features == FEATURE_SET:
            features = router_features(embedding, [router_text], [router_tokens])
        else:
            features = embedding
        return features, input_tokens

    def _predict(
        self, state: _PoolState, features: np.ndarray, lam: float
    ) -> tuple[RouterPrediction, str]:
        version = state.router.version
        try:
            prediction = state.router.predict(features, lam)
            problem = _non_finite_output(prediction)
        # The ONNX run raises onnxruntime's private types; routing must not fail.
        except Exception as exc:
            problem = f"failed ({exc})"
        if problem is None:
            return prediction, version

        # Neutral outputs; _decide then gives the policy part to the cheapest
        # allowed model by input price, and exploration still applies.
        with self._counter_lock:
            self.router_failures += 1
            first_for_version = version not in self._degraded_versions
            self._degraded_versions.add(version)
        log = logger.warning if first_for_version else logger.debug
        log(
            "router %s %s; choosing the cheapest model and logging policy version "
            "%s+degraded (%d degraded requests so far)",
            version, problem, version, self.router_failures,
        )
        size = len(state.router.models)
        prediction = RouterPrediction(np.zeros(size), np.full(size, 0.5), np.zeros(size))
        return prediction, f"{version}{DEGRADED_SUFFIX}"

    def _decide(
        self,
        request: PreparedRequest,
        budget: float | None,
        willingness_to_pay: float | None,
        models: Iterable[str] | None,
        exclude: Iterable[str] | None,
        session_id: str | None,
        max_tokens: int | None,
        strict: bool | None,
        request_id: str,
    ) -> tuple[RoutingDecision, _PoolState, float]:
        start = time.perf_counter()
        budget = check_budget(budget) if budget is not None else self.budget
        wtp = self._resolve_wtp(willingness_to_pay, budget)
        lam = 0.0 if wtp is None else 1.0 / wtp
        if session_id is not None and not isinstance(session_id, str):
            raise TypeError(f"session_id must be a str, got {type(session_id).__name__}")
        if session_id is not None:
            check_utf8(session_id, "session_id")

        state = self._pool_state()
        allowed = self._allowed_mask(state, models, exclude)
        features, input_tokens = self._featurise(state, request)
        prediction, version = self._predict(state, features, lam)

        columns = state.columns
        logits = prediction.logits[columns]
        quality = np.clip(prediction.quality[columns], 0.0, 1.0)
        output_tokens = np.clip(np.nan_to_num(prediction.output_tokens[columns]), 0.0, None)
        if max_tokens is not None:
            output_tokens = np.minimum(output_tokens, max_tokens)
        cost = input_tokens * state.input_price + output_tokens * state.output_price
        if version.endswith(DEGRADED_SUFFIX):
            logits = _cheapest_only(cost, allowed)

        distribution = choice_distribution(
            logits, quality, cost, allowed, budget,
            exploration=self.exploration,
            temperature=self.policy_temperature or state.router.temperature,
            cold_start=self._floored(state),
            min_explore=self.min_explore,
        )
        if distribution.over_budget and (self.strict if strict is None else strict):
            cheapest = int(np.argmax(distribution.probabilities))
            raise BudgetExceededError(
                f"no allowed model fits budget={budget!r} USD: the cheapest, "
                f"{state.models[cheapest].name}, is predicted to cost "
                f"{cost[cheapest]:.6f} USD; raise the budget or pass strict=False"
            )

        probabilities = distribution.probabilities
        pinned = self._pinned_model(state, session_id, allowed, cost, budget)
        if pinned is not None:
            probabilities = np.zeros(len(state.models))
            probabilities[pinned] = 1.0
            chosen = pinned
        else:
            chosen = sample_index(probabilities, self._rng)
        order = fallback_order(chosen, distribution, quality)
        routing_ms = (time.perf_counter() - start) * 1000

        names = [m.name for m in state.models]
        allowed_names = [names[i] for i in np.flatnonzero(allowed)]
        decision = RoutingDecision(
            model=names[chosen],
            probabilities={names[i]: float(probabilities[i]) for i in np.flatnonzero(allowed)},
            predicted_cost={n: float(cost[state.index[n]]) for n in allowed_names},
            predicted_quality={n: float(quality[state.index[n]]) for n in allowed_names},
            predicted_output_tokens={
                n: float(output_tokens[state.index[n]]) for n in allowed_names
            },
            input_tokens=input_tokens,
            lam=lam,
            budget=budget,
            willingness_to_pay=wtp,
            propensity=float(probabilities[chosen]),
            over_budget=distribution.over_budget,
            session_pinned=pinned is not None,
            policy_version=version,
            fallback_order=[names[i] for i in order],
            cold_start=[n for n in allowed_names if state.models[state.index[n]].cold_start],
            features=features,
        )
        logger.debug(
            "request %s: chose %s with probability %.3f among %d feasible models, "
            "λ=%.4g, budget=%s, over_budget=%s, pinned=%s, policy %s, %.2f ms",
            request_id, decision.model, decision.propensity,
            int(distribution.feasible.sum()), lam, budget, distribution.over_budget,
            pinned is not None, version, routing_ms,
        )
        return decision, state, routing_ms

    def _resolve_wtp(self, willingness_to_pay: float | None, budget: float | None) -> float | None:
        if willingness_to_pay is not None:
            return check_willingness_to_pay(willingness_to_pay)
        if self.willingness_to_pay is not None:
            return self.willingness_to_pay
        if budget is not None:
            return None  # λ = 0: the best predicted quality that fits the budget
        return DEFAULT_WILLINGNESS_TO_PAY

    def _pinned_model(
        self,
        state: _PoolState,
        session_id: str | None,
        allowed: np.ndarray,
        cost: np.ndarray,
        budget: float | None,
    ) -> int | None:
        if session_id is None:
            return None
        with self._session_lock:
            model = self._sessions.get(session_id)
        if model is None:
            try:
                model = self._store.session_model(session_id)
            except _LOG_ERRORS as exc:
                # While log writes fail, _count_log_failure has already warned.
                log = logger.debug if self._log_failing else logger.warning
                log("cannot read session %s from the log: %s", session_id, exc)
                model = None
        index = state.index.get(model) if model else None
        if index is None or not allowed[index]:
            return None
        if budget is not None and cost[index] > budget:
            logger.debug("session %s: %s no longer fits the budget", session_id, model)
            return None
        return index

    def _remember_session(self, session_id: str | None, model: str) -> None:
        if session_id is None:
            return
        with self._session_lock:
            self._sessions[session_id] = model
            self._sessions.move_to_end(session_id)
            while len(self._sessions) > SESSION_CACHE_SIZE:
                self._sessions.popitem(last=False)

    # -- provider calls ---------------------------------------------------

    def _prepare_call(
        self,
        prompt: str | None,
        messages: list[dict[str, Any]] | None,
        budget: float | None,
        willingness_to_pay: float | None,
        models: Iterable[str] | None,
        exclude: Iterable[str] | None,
        session_id: str | None,
        strict: bool | None,
        stream: bool,
        litellm_kwargs: dict[str, Any],
    ) -> _Call:
        request = prepare_request(prompt, messages)
        reserved = {"model", "messages", "num_retries"} & set(litellm_kwargs)
        if reserved:
            raise TypeError(
                f"complete() got {sorted(reserved)}, which the client sets itself; use "
                "models=[...] to restrict the choice"
            )
        request_id = uuid.uuid4().hex
        max_tokens = litellm_kwargs.get("max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
            max_tokens = None
        decision, state, routing_ms = self._decide(
            request, budget, willingness_to_pay, models, exclude, session_id,
            max_tokens, strict, request_id,
        )
        order = [state.models[state.index[name]] for name in decision.fallback_order]
        return _Call(request, request_id, decision, state, order, routing_ms, stream, session_id)

    def _litellm(self) -> Any:
        ensure_local_cost_map()
        import litellm

        return litellm

    def _call_params(self, model: PoolModel, call: _Call, kwargs: dict[str, Any]) -> dict[str, Any]:
        params = {"timeout": self.timeout, **model.params, **kwargs}
        params.update(
            model=model.litellm_model,
            messages=call.request.messages,
            num_retries=0,
            max_retries=0,
        )
        if call.stream:
            params["stream"] = True
            params.setdefault("stream_options", {"include_usage": True})
        return params

    def _invoke(self, model: PoolModel, call: _Call, kwargs: dict[str, Any]) -> Any:
        result = self._litellm().completion(**self._call_params(model, call, kwargs))
        if not call.stream:
            return check_choices(result)
        # Read the first chunk here, so that an error before any text arrives
        # still falls back to the next model.
        iterator = iter(result)
        first = next(iterator, None)
        return iterator, [] if first is None else [first]

    async def _ainvoke(self, model: PoolModel, call: _Call, kwargs: dict[str, Any]) -> Any:
        result = await self._litellm().acompletion(**self._call_params(model, call, kwargs))
        if not call.stream:
            return check_choices(result)
        iterator = result.__aiter__()
        try:
            first = await iterator.__anext__()
        except StopAsyncIteration:
            return iterator, []
        return iterator, [first]

    # -- results and logging ---------------------------------------------

    def _finish(self, call: _Call, outcome: CallOutcome, start: float) -> Response:
        latency = time.perf_counter() - start
        raw = outcome.result
        text = _response_text(raw)
        usage = getattr(raw, "usage", None)
        input_tokens, output_tokens, estimated = self._usage_tokens(call, usage, text)
        cost = outcome.served.price.cost(input_tokens, output_tokens)
        response = Response(
            text=text,
            model=outcome.served.name,
            cost=cost,
            request_id=call.request_id,
            routing=call.decision,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            latency_s=latency,
            fallback_chain=list(outcome.chain),
            tokens_estimated=estimated,
            raw=raw,
        )
        self._write_log(
            call, served=outcome.served.name, chain=outcome.chain, status="ok",
            input_tokens=input_tokens, output_tokens=output_tokens, estimated=estimated,
            cost=cost, latency=latency, error=None,
        )
        self._remember_session(call.session_id, outcome.served.name)
        self._evaluate(call, text)
        return response

    def _stream_finisher(
        self, call: _Call, outcome: CallOutcome, start: float
    ) -> Callable[[StreamResult], float]:
        def finish(result: StreamResult) -> float:
            latency = time.perf_counter() - start
            input_tokens, output_tokens, estimated = self._usage_tokens(
                call, result.usage, result.text
            )
            cost = outcome.served.price.cost(input_tokens, output_tokens)
            self._write_log(
                call, served=outcome.served.name, chain=outcome.chain,
                status=result.status, input_tokens=input_tokens,
                output_tokens=output_tokens, estimated=estimated, cost=cost,
                latency=latency,
                error=(
                    describe_error(result.error, secret_values(call.order))
                    if result.error is not None
                    else None
                ),
            )
            self._remember_session(call.session_id, outcome.served.name)
            if result.status == "ok":
                self._evaluate(call, result.text)
            return cost

        return finish

    def _usage_tokens(
        self, call: _Call, usage: Any, text: str
    ) -> tuple[int, int, bool]:
        prompt_tokens = getattr(usage, "prompt_tokens", None)
        completion_tokens = getattr(usage, "completion_tokens", None)
        if isinstance(prompt_tokens, int) and isinstance(completion_tokens, int):
            return prompt_tokens, completion_tokens, False
        # NOTE: without provider usage, tokens are WordPiece counts of the
        # embedder's tokenizer, which differ from the provider's tokenizer.
        output_tokens = int(self._embedder.count_tokens([text])[0]) if text else 0
        return call.decision.input_tokens, output_tokens, True

    def _log_failure(self, call: _Call, exc: AllModelsFailedError, latency: float) -> None:
        self._write_log(
            call, served=None, chain=list(exc.causes), status="error",
            input_tokens=None, output_tokens=None, estimated=False, cost=None,
            latency=latency, error=str(exc),
        )

    def _write_log(
        self,
        call: _Call,
        *,
        served: str | None,
        chain: list[str],
        status: str,
        input_tokens: int | None,
        output_tokens: int | None,
        estimated: bool,
        cost: float | None,
        latency: float,
        error: str | None,
    ) -> None:
        decision = call.decision
        record = {
            "id": call.request_id,
            "created_at": time.time(),
            "policy_version": decision.policy_version,
            "embedder_sha256": self._embedder.sha256,
            "features": call.state.router.features,
            "embedding": np.asarray(decision.features, dtype="<f2").tobytes(),
            "prompt_sha256": call.request.prompt_sha256,
            "prompt": call.request.prompt_log_text if self.log_prompts else None,
            "lam": decision.lam,
            "willingness_to_pay": decision.willingness_to_pay,
            "budget": decision.budget,
            "allowed_models": list(decision.probabilities),
            "probabilities": decision.probabilities,
            "predictions": {
                name: {
                    "quality": decision.predicted_quality[name],
                    "cost": decision.predicted_cost[name],
                    "output_tokens": decision.predicted_output_tokens[name],
                }
                for name in decision.probabilities
            },
            "chosen_model": decision.model,
            "propensity": decision.propensity,
            "served_model": served,
            "fallback_chain": list(chain),
            "over_budget": decision.over_budget,
            "session_id": call.session_id,
            "session_pinned": decision.session_pinned,
            "stream": call.stream,
            "status": status,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "tokens_estimated": estimated,
            "cost": cost,
            "predicted_cost": decision.predicted_cost[decision.model],
            "latency_ms": latency * 1000,
            "routing_ms": call.routing_ms,
            "error": error,
        }
        try:
            self._store.insert_request(record)
        except _LOG_ERRORS as exc:
            self._count_log_failure(call.request_id, exc)
            return
        if self._log_failing:
            self._log_failing = False
            logger.info(
                "log writes to %s succeed again after %d failures",
                self._store.path, self.log_write_failures,
            )

    def _count_log_failure(self, request_id: str, exc: BaseException) -> None:
        with self._counter_lock:
            self.log_write_failures += 1
            failures = self.log_write_failures
            first_of_run = not self._log_failing
            self._log_failing = True
        self._store.count_write_failure()
        # One WARNING per run of failures (and every 100th), so a full disk
        # does not flood the host's logs; the rest go to DEBUG.
        log = logger.warning if first_of_run or failures % 100 == 0 else logger.debug
        log(
            "request %s: log write to %s failed (%s); %d failures so far. Check that "
            "the disk has space and SMARTLLM_HOME is writable; repeats are logged at "
            "DEBUG until a write succeeds",
            request_id, self._store.path, exc, failures,
        )

    def _evaluate(self, call: _Call, text: str) -> None:
        if self.evaluator is None:
            return
        try:
            score = self.evaluator(call.request.evaluator_prompt, text)
            self._store.add_feedback(call.request_id, score, "evaluator")
        # The evaluator is user code; its failure must not fail the completion.
        except Exception as exc:
            logger.warning("request %s: evaluator failed: %s", call.request_id, exc)


def _non_finite_output(prediction: RouterPrediction) -> str | None:
    for name in ("logits", "quality", "output_tokens"):
        if not np.isfinite(getattr(prediction, name)).all():
            return f"returned non-finite {name}"
    return None


def _response_text(response: Any) -> str:
    try:
        content = response.choices[0].message.content
    except (AttributeError, IndexError, TypeError):
        return ""
    return content or ""


def _name_list(names: Iterable[str], argument: str) -> list[str]:
    if isinstance(names, str):
        return [names]
    result = list(names)
    for name in result:
        if not isinstance(name, str):
            raise TypeError(f"{argument} must contain str model names, got {name!r}")
    return result


def _env_float(value: float | None, variable: str, default: float | None = None) -> Any:
    if value is not None:
        return value
    raw = os.environ.get(variable)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(
            f"{variable}={raw!r} is not a number; set it to a number or unset it"
        ) from None


def _cheapest_only(cost: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Return logits that put the whole policy part on the cheapest allowed model."""
    logits = np.full(len(cost), -np.inf)
    candidates = np.flatnonzero(allowed)
    logits[candidates[np.argmin(cost[candidates])]] = 0.0
    return logits


def _env_int(value: int | None, variable: str, default: int) -> int:
    source = "max_retries"
    if value is None:
        raw = os.environ.get(variable)
        source = variable
        if raw is None or raw.strip() == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigurationError(
                f"{variable}={raw!r} is not an integer; set it to an integer such as 2"
            ) from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"{source}={value!r} is invalid; use an integer >= 0")
    return value


def _env_bool(value: bool | None, variable: str) -> bool:
    if value is not None:
        return bool(value)
    return os.environ.get(variable, "").strip().lower() in {"1", "true", "yes", "on"}


def _check_positive(value: object, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigurationError(f"{name}={value!r} is invalid; pass a finite number > 0")
    return float(value)


def _seed_of(random_state: int | np.random.Generator) -> int:
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**31))
    return int(random_state)
