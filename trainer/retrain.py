"""``smartllm retrain``: refit the routing policy from the local request log.

The command reads the log joined with the latest feedback and recomputes
each call's cost from its logged tokens and the current prices. It fits
candidate routers (see :mod:`trainer._retrain_candidates`) on a training
slice and compares them with the current router by DR value on the held-out
slice (see :mod:`trainer._retrain_eval` for the promotion rule). The winner
is installed as a new version under ``<data_dir>/routers``.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from smartllm import _versions
from smartllm._embedder import Embedder
from smartllm._errors import AssetError, ConfigurationError
from smartllm._features import FEATURE_SET
from smartllm._overlap import DEFAULT_MIN_FEEDBACK
from smartllm._paths import data_dir
from smartllm._router import Router, RouterSource, load_router
from smartllm._store import LOG_FILE_NAME

from . import _retrain_data as data
from ._retrain_candidates import FitSettings, export_candidate, fit_candidates
from ._retrain_eval import (
    compare,
    held_out_targets,
    plot_curves,
    router_logits,
    row_values,
    select,
    traffic_weights,
    uniform_logits,
)
from ._retrain_report import format_report
from ._validation import DEFAULT_LAMBDA_GRID

logger = logging.getLogger(__name__)

RetrainError = data.RetrainError
DEFAULT_HOLDOUT = 0.3
MIN_HOLDOUT_ROWS = 20
P_MIN = 0.02
CURRENT = "current"
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass
class RetrainOptions:
    """Settings of one retrain run; the command-line options map onto these fields."""

    since: float = 0.0  # Unix time; rows created earlier are ignored
    min_feedback: int = DEFAULT_MIN_FEEDBACK
    min_new: int = 0
    holdout: float = DEFAULT_HOLDOUT
    dry_run: bool = False
    force: bool = False
    log_path: Path | None = None
    prices: dict[str, tuple[float, float]] = field(default_factory=dict)
    plot: Path | None = None
    n_boot: int = 1000
    fit: FitSettings = field(default_factory=FitSettings)


def parse_since(value: str, now: float | None = None) -> float:
    """Return the Unix time for an ISO date/time or a duration such as ``7d`` back from now.

    Durations take s, m, h, d or w. An ISO time without a zone is local time.
    """
    match = _DURATION.match(value.strip())
    if match:
        now = time.time() if now is None else now
        return now - float(match.group(1)) * _SECONDS[match.group(2)]
    try:
        return datetime.fromisoformat(value.strip()).timestamp()
    except ValueError:
        raise ConfigurationError(
            f"--since {value!r} is neither an ISO date (2026-12-01, "
            "2026-12-01T08:00) nor a duration (30m, 12h, 7d, 2w)"
        ) from None


def load_price_file(path: Path) -> dict[str, tuple[float, float]]:
    """Read a --prices JSON file: {model: {input_per_million, output_per_million}} in USD.

    ``input_per_token`` and ``output_per_token`` are accepted as well.
    """
    from smartllm._pricing import parse_user_price

    try:
        table = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read --prices {path}: {exc}") from exc
    if not isinstance(table, dict):
        raise ConfigurationError(f"--prices {path} must contain a JSON object keyed by model")
    prices = {}
    for model, entry in table.items():
        price = parse_user_price(model, entry)
        prices[model] = (price.input_per_token, price.output_per_token)
    return prices


def retrain(options: RetrainOptions, progress: bool = False) -> dict[str, Any]:
    """Run one retrain and return its report; see the module docstring.

    Raises RetrainError when the log cannot be used, with the fix in the message.
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}
    log_path = options.log_path or data_dir() / LOG_FILE_NAME
    routers = _versions.routers_dir()
    connection = data.open_log(log_path)
    try:
        max_id = data.feedback_max_id(connection)
        if options.min_new > 0:
            skipped = _check_min_new(connection, options.min_new, routers)
            if skipped is not None:
                return skipped
        embedder_sha256 = Embedder().sha256
        current = _current_router(embedder_sha256)
        router_prices = current.prices if current is not None else {}
        rows, exclusions, rows_read = data.read_rows(
            connection, options.since, embedder_sha256, progress
        )
    finally:
        connection.close()
    timings["read"] = time.perf_counter() - started

    if rows_read == 0:
        raise RetrainError(
            f"the log {log_path} has no requests since {_format_time(options.since)}: "
            "route requests through smartllm.Client first, or widen --since"
        )
    _check_usable(rows, exclusions, embedder_sha256, options.min_feedback)

    step = time.perf_counter()
    logged, prices = data.to_arrays(rows, None, router_prices, options.prices)
    logged.rows_read, logged.exclusions, logged.feedback_max_id = rows_read, exclusions, max_id
    counts = logged.feedback_counts()
    router_models = [m for m in logged.models if counts[m] >= options.min_feedback]
    _check_enough_models(counts, router_models, options.min_feedback)
    logged.exclusions.under_explored_model = int(
        sum(counts[m] for m in logged.models if m not in router_models)
    )
    held_out = data.holdout_mask(logged.ids, options.holdout)
    if held_out.sum() < MIN_HOLDOUT_ROWS or (~held_out).sum() < MIN_HOLDOUT_ROWS:
        raise RetrainError(
            f"the split leaves {int(held_out.sum())} held-out and {int((~held_out).sum())} "
            f"training rows; each side needs {MIN_HOLDOUT_ROWS}: move --holdout "
            "(0.05 to 0.8) towards 0.5 or collect more feedback"
        )
    train, test = logged.subset(~held_out), logged.subset(held_out)
    timings["prepare"] = time.perf_counter() - step

    step = time.perf_counter()
    settings = options.fit
    if settings.lambda_grid is None:
        settings = FitSettings(**{**settings.__dict__, "lambda_grid": DEFAULT_LAMBDA_GRID})
    candidates = fit_candidates(train, router_models, settings)
    timings["fit"] = time.perf_counter() - step

    step = time.perf_counter()
    staging = _versions.staging_directory(routers)
    try:
        manifest_extra = {
            "min_feedback": options.min_feedback,
            "under_explored": [m for m in logged.models if m not in router_models],
        }
        metadata = {
            "embedder_sha256": embedder_sha256,
            "features": FEATURE_SET,
            "prices": _price_table(prices, logged.models),
        }
        loaded: dict[str, Router] = {}
        for candidate in candidates:
            directory = staging / candidate.name
            try:
                export_candidate(candidate, directory, metadata, manifest_extra)
                loaded[candidate.name] = load_router(
                    directory, embedder_sha256, version=candidate.name
                )
            except (RuntimeError, AssetError) as exc:
                logger.warning("candidate %s left out: %s", candidate.name, exc)
        timings["export"] = time.perf_counter() - step

        step = time.perf_counter()
        report = _evaluate(
            loaded, current, train, test, prices, settings, options, progress
        )
        timings["evaluate"] = time.perf_counter() - step

        report.update(
            _install_or_keep(report, candidates, staging, current, options, max_id, routers)
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    report.update(
        rows_read=rows_read,
        rows_used=int(logged.X.shape[0]),
        rows_train=int(train.X.shape[0]),
        rows_held_out=int(test.X.shape[0]),
        excluded=logged.exclusions.as_dict(),
        feedback_per_model=counts,
        router_models=router_models,
        under_explored=manifest_extra["under_explored"],
        min_feedback=options.min_feedback,
        price_sources=logged.price_sources,
        since=options.since,
    )
    timings["total"] = time.perf_counter() - started
    report["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
    return report


def _evaluate(loaded, current, train, test, prices, settings, options, progress):
    from tqdm.auto import tqdm

    grid = np.asarray(settings.lambda_grid, dtype=np.float64)
    targets = held_out_targets(train, test, P_MIN)
    logits = {}
    policies = list(loaded.items())
    if current is not None:
        policies.append((CURRENT, current))
    for name, router in tqdm(policies, desc="evaluate", disable=not progress):
        logits[name] = router_logits(router, test, grid, prices)
    if current is None:
        logits[CURRENT] = uniform_logits(test.X.shape[0], grid, len(test.models))

    values = {name: row_values(item, targets, grid) for name, item in logits.items()}
    weights = traffic_weights(test.lam, grid)
    comparison = compare(
        values, CURRENT, grid, options.n_boot, settings.random_state, weights
    )
    chosen = select(comparison, options.force)

    plot = None
    if options.plot is not None:
        options.plot.parent.mkdir(parents=True, exist_ok=True)
        if plot_curves(options.plot, grid, logits, targets):
            plot = str(options.plot)
    return {
        "lambda_grid": grid.tolist(),
        "baseline": current.version if current is not None else "uniform random choice",
        "values": comparison.values,
        "differences": comparison.differences,
        "selected": chosen,
        "plot": plot,
    }


def _install_or_keep(report, candidates, staging, current, options, max_id, routers):
    chosen = report["selected"]
    active = current.version if current is not None else None
    result: dict[str, Any] = {"promoted": False, "version": active, "forced": False}
    if chosen is None:
        result["reason"] = "no candidate passed the promotion rule"
    elif options.dry_run:
        result["reason"] = f"--dry-run: {chosen} would be installed"
    else:
        forced = options.force and not report["differences"][chosen]["passes"]
        directory = staging / chosen
        _add_retrain_metrics(directory / "router.json", report, chosen)
        installed = _versions.install_version(directory, routers)
        result.update(promoted=True, version=installed.name, forced=forced)
        result["reason"] = f"{chosen} installed" + (" by --force" if forced else "")

    if chosen is not None:
        result["candidate_value"] = _value_entry(report, chosen)
    result["current_value"] = _value_entry(report, CURRENT)
    result["candidates"] = {c.name: {"description": c.description, **c.details} for c in candidates}
    if not options.dry_run:
        _versions.write_state(
            {
                "finished_at": time.time(),
                "feedback_max_id": max_id,
                "promoted": result["promoted"],
                "version": result["version"],
            },
            routers,
        )
    return result


def _value_entry(report, name):
    values = report["values"][name]
    return {"lambda": report["lambda_grid"], **values}


def _add_retrain_metrics(path: Path, report, chosen):
    manifest = json.loads(path.read_text(encoding="utf-8"))
    difference = report["differences"][chosen]
    manifest.setdefault("metrics", {})["retrain"] = {
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "candidate": chosen,
        "baseline": report["baseline"],
        "lambda_grid": report["lambda_grid"],
        "dr_value": report["values"][chosen]["value"],
        "dr_value_baseline": report["values"][CURRENT]["value"],
        "mean_difference": difference["mean_difference"],
        "mean_ci": [difference["mean_ci_low"], difference["mean_ci_high"]],
    }
    path.write_text(json.dumps(manifest, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def _current_router(embedder_sha256: str) -> Router | None:
    try:
        return RouterSource(embedder_sha256).current()
    except AssetError as exc:
        logger.warning("no current router to compare with (%s); using uniform choice", exc)
        return None


def _check_min_new(connection, min_new: int, routers: Path) -> dict[str, Any] | None:
    state = _versions.read_state(routers)
    new = data.count_new_feedback(connection, int(state.get("feedback_max_id", 0)))
    if new >= min_new:
        return None
    return {
        "promoted": False,
        "skipped": True,
        "version": _versions.current_version(routers),
        "reason": f"{new} new feedback rows since the last retrain, fewer than --min-new {min_new}",
        "new_feedback": new,
        "rows_used": 0,
    }


def _check_usable(rows, exclusions, embedder_sha256: str, min_feedback: int) -> None:
    if rows:
        return
    if exclusions.other_embedder:
        raise RetrainError(
            f"all {exclusions.other_embedder} rows with feedback were logged with another "
            f"embedder than this smartllm's ({embedder_sha256[:12]}...), so their features "
            "do not match: log new requests with this version, or run the smartllm "
            "version that wrote them"
        )
    if exclusions.other_features:
        raise RetrainError(
            f"all {exclusions.other_features} rows with feedback were logged with a router "
            f"that reads other features than {FEATURE_SET}: log new requests with a "
            f"{FEATURE_SET} router"
        )
    raise RetrainError(
        f"the log has no usable rows with feedback ({exclusions.no_feedback} rows lack "
        f"feedback): retraining needs at least {min_feedback} calls with feedback for "
        "each of two models; send scores with Client.feedback(request_id, score)"
    )


def _check_enough_models(counts: dict[str, int], router_models: list[str], minimum: int):
    if len(router_models) >= 2:
        return
    listing = ", ".join(f"{m}: {c}" for m, c in sorted(counts.items(), key=lambda i: -i[1]))
    raise RetrainError(
        f"too few rows with feedback: retraining needs at least {minimum} explored calls "
        f"with feedback for each of at least two models, and has {listing}; keep "
        "routing with exploration and feedback, or lower --min-feedback"
    )


def _price_table(prices, models) -> dict[str, Any]:
    sources = sorted({prices[m][2].split(":")[0] for m in models if m in prices})
    return {
        "source": "smartllm retrain from " + (", ".join(sources) or "logged costs"),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "per_model": {
            m: {"input_per_token": prices[m][0], "output_per_token": prices[m][1]}
            for m in models
            if m in prices
        },
    }


def _format_time(timestamp: float) -> str:
    if timestamp <= 0:
        return "the start"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def options_from_args(args: argparse.Namespace) -> RetrainOptions:
    """Validate parsed options and return them as RetrainOptions."""
    if args.min_feedback < 1:
        raise ConfigurationError(f"--min-feedback {args.min_feedback} is invalid; pass >= 1")
    if args.min_new < 0:
        raise ConfigurationError(f"--min-new {args.min_new} is invalid; pass >= 0")
    if not 0.05 <= args.holdout <= 0.8:
        raise ConfigurationError(f"--holdout {args.holdout} is invalid; pass 0.05 to 0.8")
    if args.epochs < 1 or args.hidden < 1 or args.bootstrap < 100:
        raise ConfigurationError(
            "--epochs and --hidden must be >= 1 and --bootstrap >= 100"
        )
    plot = None
    if not args.no_plot:
        plot = Path(args.plot) if args.plot else data_dir() / "retrain_curves.png"
    return RetrainOptions(
        since=parse_since(args.since) if args.since else 0.0,
        min_feedback=args.min_feedback,
        min_new=args.min_new,
        holdout=args.holdout,
        dry_run=args.dry_run,
        force=args.force,
        log_path=Path(args.log) if args.log else None,
        prices=load_price_file(Path(args.prices)) if args.prices else {},
        plot=plot,
        n_boot=args.bootstrap,
        fit=FitSettings(hidden=args.hidden, epochs=args.epochs, random_state=args.seed),
    )


def run(args: argparse.Namespace) -> int:
    """Run ``smartllm retrain`` from parsed arguments; return the exit code."""
    try:
        options = options_from_args(args)
        progress = not args.json and sys.stderr.isatty()
        options.fit = FitSettings(**{**options.fit.__dict__, "progress": progress})
        report = retrain(options, progress=progress)
    except (RetrainError, ConfigurationError) as exc:
        print(f"smartllm retrain: {exc}", file=sys.stderr)
        return 1
    except sqlite3.DatabaseError as exc:
        print(
            f"smartllm retrain: cannot read the log as a smartllm SQLite log ({exc}); "
            "check --log or SMARTLLM_HOME, or move the damaged file away",
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(json.dumps(report, indent=2, default=_json_default))
    else:
        print(format_report(report))
    return 0


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
