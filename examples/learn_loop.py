"""Run smartllm's whole learning loop offline on recorded answers of real models.

    python examples/learn_loop.py --requests 2400 --retrain-every 400 \\
        --plot end_to_end.png --json end_to_end.json

The loop starts ``replay_server.py`` on 127.0.0.1, points every pool model
at it and sends held-out GSM8K, MATH level 5 and CRUXEval prompts through
``Client.complete``. Each answer is graded against the gold answer with the
routing matrix's grader, the score goes back with ``Client.feedback``, and
``smartllm retrain`` runs every ``--retrain-every`` requests. One model of
the pool, gpt-4o-mini-2024-07-18, is unknown to the starting router and
enters with ``like=`` (a cold start), so the run shows what retraining
learns about it.

Utility per request is quality minus λ times cost, with λ = 1 /
``--willingness-to-pay``. Regret is measured against the oracle (the best
recorded model for each prompt, within ``--budget``) and against the best
single model in hindsight (the model with the highest mean utility over the
run's prompts). Results are printed per phase, a phase being the requests
between two retrains, and optionally written as JSON and as a PNG.
No API key is needed and no traffic leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from replay_server import (  # noqa: E402
    DEFAULT_DATA_DIR,
    FailureRates,
    ReplayData,
    ReplayPrompt,
    ReplayServer,
    load_replay_data,
)

logger = logging.getLogger("learn_loop")

COLD_MODEL = "gpt-4o-mini-2024-07-18"
# The cold model borrows this model's predictions until a retrain learns its own.
COLD_LIKE = "gemini/gemini-1.5-flash"
# `smartllm retrain` defaults to 100 feedback rows per model, which a demo of a
# few thousand requests with 5 % exploration does not reach for most models.
DEFAULT_MIN_FEEDBACK = 30


@dataclass
class RequestRow:
    """The outcome of one routed request, as the loop measured it."""

    index: int
    phase: int
    prompt_id: str
    task: str
    policy_version: str
    chosen: str
    served: str | None
    propensity: float
    quality: float
    cost: float
    utility: float
    oracle_utility: float
    best_single_utility: float
    best_single_cost: float  # USD
    feedback_sent: bool


@dataclass
class LoopResult:
    """Everything the loop measured: requests, retrains and policy evaluations."""

    rows: list[RequestRow] = field(default_factory=list)
    retrains: list[dict[str, Any]] = field(default_factory=list)
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    best_single: str = ""
    lam: float = 0.0
    status: dict[str, Any] = field(default_factory=dict)  # Client.status() at the end


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000,
                        help="requests to send (default 2000)")
    parser.add_argument("--retrain-every", type=int, default=400,
                        help="run smartllm retrain after every this many requests (default 400)")
    parser.add_argument("--budget", type=float, default=None,
                        help="per-request ceiling on predicted cost in USD (default none)")
    parser.add_argument("--willingness-to-pay", type=float, default=0.05,
                        help="USD value of a perfect answer; λ = 1 / this (default 0.05)")
    parser.add_argument("--exploration", type=float, default=None,
                        help="client exploration share (default: the client's default)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the prompt order and draws")
    parser.add_argument("--plot", type=Path, help="write the curves to this PNG")
    parser.add_argument("--json", type=Path, help="write the per-phase results to this file")
    parser.add_argument("--home", type=Path,
                        help="smartllm data directory (default: a new temporary directory)")
    parser.add_argument("--router", type=Path,
                        help="router directory to start from, installed as the first "
                        "version in --home (default: the bundled router)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR,
                        help="replay data folder (default examples/replay_data)")
    parser.add_argument("--min-feedback", type=int, default=DEFAULT_MIN_FEEDBACK,
                        help="smartllm retrain --min-feedback "
                        f"(default {DEFAULT_MIN_FEEDBACK})")
    parser.add_argument("--force", action="store_true",
                        help="pass --force to smartllm retrain: install the best candidate "
                        "even when it fails the promotion rule")
    parser.add_argument("--retrain-arg", action="append", default=[],
                        help="extra argument for smartllm retrain, e.g. --retrain-arg=--bootstrap=200")
    parser.add_argument("--eval-prompts", type=int, default=None,
                        help="prompts used to evaluate each policy offline (default: all)")
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="milliseconds the replay server adds to every answer")
    parser.add_argument("--error-rate", type=float, default=0.0,
                        help="share of server answers that are HTTP 500 (default 0)")
    parser.add_argument("--rate-limit-rate", type=float, default=0.0,
                        help="share of server answers that are HTTP 429 (default 0)")
    parser.add_argument("--stream", action="store_true", help="request streamed answers")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.retrain_every < 1:
        parser.error("--requests and --retrain-every must be >= 1")
    if args.willingness_to_pay <= 0:
        parser.error("--willingness-to-pay must be > 0 USD")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logger.setLevel(logging.INFO)

    # litellm reads its bundled price map instead of downloading one; the
    # retrain subprocess inherits this.
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    home = args.home or Path(tempfile.mkdtemp(prefix="smartllm-learn-loop-"))
    home.mkdir(parents=True, exist_ok=True)
    # The client and the retrain subprocess both read the log and the
    # installed routers from here.
    os.environ["SMARTLLM_HOME"] = str(home)
    if args.router is not None:
        install_start_router(args.router)

    data = load_replay_data(args.data)
    started = time.perf_counter()
    result = run_loop(args, data, home)
    elapsed = time.perf_counter() - started

    phases = summarise_phases(result)
    print_report(result, phases, home, elapsed)
    if args.json is not None:
        write_json(args, result, phases, elapsed)
    if args.plot is not None:
        plot_run(result, args.plot)
        print(f"plot written to {args.plot}")
    return 0


def install_start_router(directory: Path) -> None:
    """Install a router directory as the active version under SMARTLLM_HOME."""
    # NOTE: uses smartllm's private version store, because the CLI has no
    # install command. The bundled router cannot be swapped by Client(router=...),
    # since a client given a fixed router never loads retrained versions.
    from smartllm import _versions

    staging = _versions.staging_directory()
    for name in ("router.onnx", "router.json"):
        shutil.copy2(directory / name, staging / name)
    version = _versions.install_version(staging)
    logger.info("starting router %s installed as %s", directory, version.name)


def build_client(args: argparse.Namespace, data: ReplayData, url: str) -> Any:
    """Create a Client whose pool calls the replay server, the cold model with like=."""
    from smartllm import Client

    models: dict[str, dict[str, Any]] = {}
    for model in data.models:
        input_price, output_price = data.price(model)
        entry: dict[str, Any] = {
            "model": f"openai/{model}",
            "api_base": url,
            "api_key": "replay-no-key",
            "price": {"input_per_token": input_price, "output_per_token": output_price},
        }
        if model == COLD_MODEL:
            entry["like"] = COLD_LIKE
        models[model] = entry
    return Client(
        models=models,
        exploration=args.exploration,
        random_state=args.seed,
        timeout=10.0,
        max_retries=1,
        retry_base_delay=0.05,
    )


def prompt_utilities(prompt: ReplayPrompt, data: ReplayData, lam: float) -> dict[str, float]:
    """Return quality - λ cost of every model with a recorded answer to the prompt."""
    from trainer.matrix.grading import grade

    utilities = {}
    for model, answer in prompt.answers.items():
        input_price, output_price = data.price(model)
        cost = prompt.input_tokens * input_price + answer.output_tokens * output_price
        utilities[model] = float(grade(prompt.task, answer.output, prompt.gold)) - lam * cost
    return utilities


def recorded_cost(prompt: ReplayPrompt, data: ReplayData, model: str) -> float:
    input_price, output_price = data.price(model)
    return prompt.input_tokens * input_price + prompt.answers[model].output_tokens * output_price


def oracle_utility(
    prompt: ReplayPrompt, data: ReplayData, utilities: dict[str, float], budget: float | None
) -> float:
    """Return the best utility of a model whose recorded cost fits the budget."""
    feasible = [
        model for model in utilities
        if budget is None or recorded_cost(prompt, data, model) <= budget
    ]
    if not feasible:  # as the client does, fall back to the cheapest model
        feasible = [min(utilities, key=lambda m: recorded_cost(prompt, data, m))]
    return max(utilities[model] for model in feasible)


def prompt_stream(data: ReplayData, count: int, seed: int) -> list[ReplayPrompt]:
    """Return ``count`` prompts: shuffled passes over the replay set, one after another."""
    rng = np.random.default_rng(seed)
    order: list[int] = []
    while len(order) < count:
        order.extend(rng.permutation(len(data.prompts)).tolist())
    return [data.prompts[i] for i in order[:count]]


def choose_best_single(
    stream: list[ReplayPrompt], data: ReplayData, lam: float
) -> tuple[str, list[dict[str, float]]]:
    """Return the model with the highest mean utility over the stream, and every table.

    Only models with a record for every prompt of the stream qualify.
    """
    tables = [prompt_utilities(prompt, data, lam) for prompt in stream]
    complete = [m for m in data.models if all(m in table for table in tables)]
    means = {m: float(np.mean([table[m] for table in tables])) for m in complete}
    return max(means, key=means.__getitem__), tables


def run_loop(args: argparse.Namespace, data: ReplayData, home: Path) -> LoopResult:
    """Send the request stream, grade, send feedback and retrain every M requests."""
    from smartllm import AllModelsFailedError
    from trainer.matrix.grading import grade

    lam = 1.0 / args.willingness_to_pay
    stream = prompt_stream(data, args.requests, args.seed)
    best_single, tables = choose_best_single(stream, data, lam)
    result = LoopResult(best_single=best_single, lam=lam)
    failures = FailureRates(server_error=args.error_rate, rate_limit=args.rate_limit_rate,
                            retry_after=0.1)

    with ReplayServer(data, latency=args.latency_ms / 1000, failures=failures,
                      seed=args.seed) as server:
        client = build_client(args, data, server.url)
        client.warm_up()
        _quiet_litellm()
        phase = 0
        result.evaluations.append(evaluate_policy(client, args, data, lam, phase))
        for index, prompt in enumerate(stream):
            if index and index % args.retrain_every == 0:
                result.retrains.append(run_retrain(args, home, index))
                phase += 1
                result.evaluations.append(
                    reevaluate_policy(client, args, data, lam, phase, result.evaluations[-1])
                )

            missing = [m for m in data.models if m not in prompt.answers]
            utilities = tables[index]
            row = RequestRow(
                index, phase, prompt.id, prompt.task, "", "", None, 0.0, 0.0, 0.0, 0.0,
                oracle_utility(prompt, data, utilities, args.budget),
                utilities[best_single], recorded_cost(prompt, data, best_single), False,
            )
            try:
                response = client.complete(
                    prompt.text, budget=args.budget,
                    willingness_to_pay=args.willingness_to_pay,
                    exclude=missing or None, stream=args.stream,
                )
                text, served, cost, request_id, routing = _read_response(response)
            except AllModelsFailedError as exc:
                logger.warning("request %d (%s) failed on every model: %s", index, prompt.id, exc)
                result.rows.append(row)
                continue

            row.quality = float(grade(prompt.task, text, prompt.gold))
            row.policy_version, row.chosen, row.served = (
                routing.policy_version, routing.model, served,
            )
            row.propensity, row.cost = routing.propensity, cost
            row.utility = row.quality - lam * cost
            client.feedback(request_id, row.quality, source="gold answer")
            row.feedback_sent = True
            result.rows.append(row)
            if (index + 1) % 100 == 0:
                _print_progress(result, index + 1)
        result.status = client.status()
        client.close()
    return result


def _read_response(response: Any) -> tuple[str, str, float, str, Any]:
    """Return text, served model, cost, request id and routing of a plain or streamed call."""
    from smartllm import StreamResponse

    if isinstance(response, StreamResponse):
        # A stream sets its cost and writes its log row when it is read to the end.
        text = "".join(response)
        return text, response.model, response.cost or 0.0, response.request_id, response.routing
    return response.text, response.model, response.cost, response.request_id, response.routing


def _quiet_litellm() -> None:
    import litellm

    # litellm prints a help banner to stdout for every failed call, which the
    # loop provokes on purpose with --error-rate.
    litellm.suppress_debug_info = True


def _print_progress(result: LoopResult, done: int) -> None:
    recent = result.rows[-100:]
    print(
        f"{done:6d} requests  last 100: quality {np.mean([r.quality for r in recent]):.3f} "
        f"cost {np.mean([r.cost for r in recent]) * 1000:.3f} mUSD "
        f"regret {np.mean([r.oracle_utility - r.utility for r in recent]):.3f}  "
        f"{COLD_MODEL} {sum(r.served == COLD_MODEL for r in recent)}%",
        flush=True,
    )


def run_retrain(args: argparse.Namespace, home: Path, index: int) -> dict[str, Any]:
    """Run ``smartllm retrain --json`` in a subprocess and return its report."""
    command = [*_smartllm_command(), "retrain", "--json", "--no-plot",
               "--min-feedback", str(args.min_feedback), "--seed", str(args.seed)]
    if args.force:
        command.append("--force")
    command += args.retrain_arg
    started = time.perf_counter()
    completed = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "SMARTLLM_HOME": str(home)},
        check=False,
    )
    seconds = time.perf_counter() - started
    entry: dict[str, Any] = {"after_requests": index, "seconds": round(seconds, 1),
                             "exit_code": completed.returncode}
    try:
        report = json.loads(completed.stdout)
    except ValueError:
        report = None
    if completed.returncode != 0 or not isinstance(report, dict):
        entry["error"] = (completed.stderr or completed.stdout).strip()[-2000:]
        logger.warning("smartllm retrain after %d requests failed (exit %d): %s", index,
                       completed.returncode, entry["error"][-500:])
        return entry
    entry.update(
        promoted=report.get("promoted"), version=report.get("version"),
        reason=report.get("reason"), router_models=report.get("router_models"),
        under_explored=report.get("under_explored"), rows_used=report.get("rows_used"),
        feedback_per_model=report.get("feedback_per_model"),
        # Mean DR value difference of each candidate minus the active router over
        # the λ grid, with the interval the promotion rule tests.
        differences={
            name: {key: difference.get(key) for key in
                   ("mean_difference", "mean_ci_low", "mean_ci_high", "mean_ci_level", "passes")}
            for name, difference in (report.get("differences") or {}).items()
        },
    )
    print(f"retrain after {index} requests ({seconds:.0f} s): {entry['reason']}; "
          f"active version {entry['version']}", flush=True)
    return entry


def _smartllm_command() -> list[str]:
    script = Path(sys.executable).with_name("smartllm")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from smartllm._cli import main; sys.exit(main())"]


def evaluate_policy(
    client: Any, args: argparse.Namespace, data: ReplayData, lam: float, phase: int
) -> dict[str, Any]:
    """Compute the active policy's expected utility on the replay prompts, without calls.

    Each prompt's routing distribution, exploration included, weights the
    recorded utility of every model. Nothing is logged.
    """
    prompts = data.prompts
    if args.eval_prompts and args.eval_prompts < len(prompts):
        # Evenly spaced rows keep each task's share, because rows are grouped by task.
        rows = np.linspace(0, len(prompts) - 1, args.eval_prompts).astype(int)
        prompts = [data.prompts[row] for row in rows]
    utility, quality, cost = [], [], []
    cold_share: dict[str, list[float]] = {}
    version = ""
    for prompt in prompts:
        missing = [m for m in data.models if m not in prompt.answers]
        decision = client.route(prompt.text, budget=args.budget,
                                willingness_to_pay=args.willingness_to_pay,
                                exclude=missing or None)
        version = decision.policy_version
        utilities = prompt_utilities(prompt, data, lam)
        probabilities = decision.probabilities
        utility.append(sum(p * utilities[m] for m, p in probabilities.items()))
        costs = {m: recorded_cost(prompt, data, m) for m in probabilities}
        cost.append(sum(p * costs[m] for m, p in probabilities.items()))
        quality.append(sum(p * (utilities[m] + lam * costs[m]) for m, p in probabilities.items()))
        cold_share.setdefault(prompt.task, []).append(probabilities.get(COLD_MODEL, 0.0))
    return {
        "phase": phase,
        "policy_version": version,
        "prompts": len(prompts),
        "expected_utility": float(np.mean(utility)),
        "expected_quality": float(np.mean(quality)),
        "expected_cost": float(np.mean(cost)),
        "cold_model_probability_by_task": {
            task: round(float(np.mean(values)), 4) for task, values in sorted(cold_share.items())
        },
    }


def reevaluate_policy(
    client: Any,
    args: argparse.Namespace,
    data: ReplayData,
    lam: float,
    phase: int,
    previous: dict[str, Any],
) -> dict[str, Any]:
    """Evaluate the active policy, reusing the previous figures when its version is unchanged."""
    version = client.route(data.prompts[0].text).policy_version
    if version == previous["policy_version"]:
        return {**previous, "phase": phase}
    return evaluate_policy(client, args, data, lam, phase)


def summarise_phases(result: LoopResult) -> list[dict[str, Any]]:
    """Aggregate the request rows of each phase, with the phase's offline evaluation."""
    phases = []
    for phase in sorted({row.phase for row in result.rows}):
        rows = [row for row in result.rows if row.phase == phase]
        versions = Counter(row.policy_version for row in rows if row.policy_version)
        by_task: dict[str, list[bool]] = {}
        for row in rows:
            by_task.setdefault(row.task, []).append(row.served == COLD_MODEL)
        phases.append({
            "phase": phase,
            "first_request": rows[0].index,
            "requests": len(rows),
            "mean_quality": float(np.mean([r.quality for r in rows])),
            "mean_cost": float(np.mean([r.cost for r in rows])),
            "mean_utility": float(np.mean([r.utility for r in rows])),
            "mean_regret": float(np.mean([r.oracle_utility - r.utility for r in rows])),
            "mean_regret_vs_best_single": float(
                np.mean([r.best_single_utility - r.utility for r in rows])
            ),
            "oracle_utility": float(np.mean([r.oracle_utility for r in rows])),
            "best_single_utility": float(np.mean([r.best_single_utility for r in rows])),
            "policy_version": versions.most_common(1)[0][0] if versions else None,
            "failed_requests": sum(1 for r in rows if r.served is None),
            "fallbacks": sum(1 for r in rows if r.served and r.served != r.chosen),
            "cold_model_share": float(np.mean([r.served == COLD_MODEL for r in rows])),
            "cold_model_share_by_task": {
                task: round(float(np.mean(flags)), 4) for task, flags in sorted(by_task.items())
            },
            "served_share": {
                model: round(count / len(rows), 4)
                for model, count in Counter(r.served for r in rows if r.served).most_common()
            },
            "offline_evaluation": next(
                (e for e in result.evaluations if e["phase"] == phase), None
            ),
            "retrain_before": _retrain_outcome(result, phase),
        })
    return phases


def _retrain_outcome(result: LoopResult, phase: int) -> dict[str, Any] | None:
    """Return what the retrain that opened this phase did, or None for phase 0."""
    if phase == 0 or phase > len(result.retrains):
        return None
    retrain = result.retrains[phase - 1]
    return {
        "exit_code": retrain["exit_code"],
        "promoted": retrain.get("promoted"),
        "version": retrain.get("version"),
        "reason": retrain.get("reason") or retrain.get("error", "")[-300:],
    }


def _promotion_label(outcome: dict[str, Any] | None) -> str:
    if outcome is None:
        return "start"
    if outcome["exit_code"] != 0:
        return "retrain failed"
    return "promoted" if outcome["promoted"] else "not promoted"


def print_report(
    result: LoopResult, phases: list[dict[str, Any]], home: Path, elapsed: float
) -> None:
    print(f"\nλ = {result.lam:g} per USD; best single model in hindsight: {result.best_single}")
    print("| phase | requests | policy | retrain | quality | cost (mUSD) | utility "
          f"| regret vs oracle | regret vs best single | {COLD_MODEL} share | offline utility |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for phase in phases:
        offline = phase["offline_evaluation"] or {}
        print(
            f"| {phase['phase']} | {phase['requests']} | {phase['policy_version']} "
            f"| {_promotion_label(phase['retrain_before'])} "
            f"| {phase['mean_quality']:.3f} | {phase['mean_cost'] * 1000:.3f} "
            f"| {phase['mean_utility']:.3f} | {phase['mean_regret']:.3f} "
            f"| {phase['mean_regret_vs_best_single']:+.3f} | {phase['cold_model_share']:.3f} "
            f"| {offline.get('expected_utility', float('nan')):.3f} |"
        )
    tasks = sorted({task for phase in phases for task in phase["cold_model_share_by_task"]})
    print(f"\n{COLD_MODEL} share of served requests by task (online)")
    print("| phase | " + " | ".join(tasks) + " |")
    print("|---|" + "---|" * len(tasks))
    for phase in phases:
        shares = phase["cold_model_share_by_task"]
        print(f"| {phase['phase']} | "
              + " | ".join(f"{shares.get(task, float('nan')):.3f}" for task in tasks) + " |")
    status = result.status
    print(f"\nlog: {status.get('requests')} requests, {status.get('requests_with_feedback')} "
          f"with feedback; data directory {home}; {elapsed:.0f} s")


def write_json(
    args: argparse.Namespace, result: LoopResult, phases: list[dict[str, Any]], elapsed: float
) -> None:
    payload = {
        "config": {
            key: (str(value) if isinstance(value, Path) else value)
            for key, value in vars(args).items()
        },
        "lambda": result.lam,
        "cold_model": COLD_MODEL,
        "cold_model_like": COLD_LIKE,
        "best_single_model": result.best_single,
        "phases": phases,
        "retrains": result.retrains,
        "log_status": result.status,
        "requests": [asdict(row) for row in result.rows],
        "seconds": round(elapsed, 1),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def plot_run(result: LoopResult, path: Path) -> None:
    """Plot cumulative regret, spend, running quality and the cold model's share."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result.rows
    x = np.arange(1, len(rows) + 1)
    utility = np.array([r.utility for r in rows])
    oracle = np.array([r.oracle_utility for r in rows])
    best = np.array([r.best_single_utility for r in rows])
    cost = np.array([r.cost for r in rows])
    quality = np.array([r.quality for r in rows])
    cold = np.array([r.served == COLD_MODEL for r in rows], dtype=float)
    window = max(25, len(rows) // 20)

    figure, axes = plt.subplots(2, 2, figsize=(12, 8))
    ax = axes[0, 0]
    ax.plot(x, np.cumsum(oracle - utility), label="vs oracle")
    ax.plot(x, np.cumsum(best - utility), label=f"vs best single ({result.best_single})")
    ax.set_title("Cumulative regret (utility = quality - λ cost)")
    ax = axes[0, 1]
    ax.plot(x, np.cumsum(cost), label="router")
    best_cost = np.array([r.best_single_cost for r in rows])
    ax.plot(x, np.cumsum(best_cost), label=f"best single ({result.best_single})")
    ax.set_title("Cumulative spend (USD)")
    ax = axes[1, 0]
    ax.plot(x, _running_mean(quality, window), label="quality")
    ax.plot(x, _running_mean(utility, window), label="utility")
    ax.plot(x, _running_mean(best, window), label="best single utility", linestyle=":")
    ax.set_title(f"Running mean over {window} requests")
    ax = axes[1, 1]
    ax.plot(x, _running_mean(cold, window), label="all tasks")
    for task in sorted({r.task for r in rows}):
        mask = np.array([r.task == task for r in rows])
        share = np.full(len(rows), np.nan)
        share[mask] = _running_mean(cold[mask], max(10, window // 3))
        ax.plot(x[mask], share[mask], label=task, alpha=0.7)
    ax.set_title(f"Share of requests served by {COLD_MODEL} (cold start)")

    for ax in axes.flat:
        for retrain in result.retrains:
            ax.axvline(retrain["after_requests"], color="grey", linestyle="--", linewidth=0.8)
        ax.set_xlabel("request")
        ax.legend(fontsize=8)
    figure.suptitle("smartllm learn loop on recorded answers (dashed: retrains)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _running_mean(values: np.ndarray, window: int) -> np.ndarray:
    sums = np.cumsum(np.insert(values.astype(float), 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    ends = np.arange(1, len(values) + 1)
    return (sums[ends] - sums[ends - counts]) / counts


if __name__ == "__main__":
    raise SystemExit(main())
