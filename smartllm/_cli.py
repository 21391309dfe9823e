"""The ``smartllm`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._version import __version__

if TYPE_CHECKING:
    from ._client import Client

logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except BrokenPipeError:
        # The reader (e.g. `| head`) closed the pipe: stop quietly, as Unix
        # tools do, and keep Python from reporting it again at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smartllm", description="In-process LLM router: inspect, route, retrain."
    )
    parser.add_argument("--version", action="version", version=f"smartllm {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG")
    commands = parser.add_subparsers(title="commands")

    info = commands.add_parser("info", help="version, data directory, bundled artefacts")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(handler=_cmd_info)

    route = commands.add_parser(
        "route", help="print the model the router picks for a prompt; calls no model"
    )
    route.add_argument("prompt", help="the prompt text")
    route.add_argument("--budget", type=float, help="per-request ceiling in USD")
    route.add_argument(
        "--willingness-to-pay", type=float, help="USD value of a perfect answer (λ = 1/value)"
    )
    route.add_argument("--models", help="comma-separated allow list of pool models")
    route.add_argument("--exclude", help="comma-separated models to leave out")
    route.add_argument("--router", help="router directory (default: installed, else bundled)")
    route.add_argument("--seed", type=int, help="seed of the exploration draw")
    route.add_argument("--json", action="store_true", help="print JSON")
    route.set_defaults(handler=_cmd_route)

    status = commands.add_parser(
        "status",
        help="log totals, router versions and per-model exploration of the log",
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=_cmd_status)

    retrain = commands.add_parser(
        "retrain",
        help="refit the router from the log and install it if it is better",
        description=RETRAIN_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_retrain_arguments(retrain)
    retrain.set_defaults(handler=_cmd_retrain)

    rollback = commands.add_parser(
        "rollback",
        help="activate an earlier installed router (default: the one before the active one)",
    )
    rollback.add_argument(
        "version", nargs="?", help="version name from 'smartllm status', or 'bundled'"
    )
    rollback.set_defaults(handler=_cmd_rollback)
    return parser


RETRAIN_DESCRIPTION = """\
Refit the routing policy from the local log and install it when it is better.

Reads the log joined with the latest feedback per request, recomputes each
call's cost from its logged tokens and current prices, fits candidates (a
DR-trained policy, a DR-learner and the best constant model per λ) on
a training slice and compares them with the current router on the held-out
slice (--holdout, default 30%) by doubly robust (DR) value over the λ grid.

Promotion rule: a candidate is installed only when (1) the mean of its paired
DR value difference to the current router over the λ grid, weighted by the
share of held-out requests logged at each λ, is above 0 and the lower end of
its bootstrap confidence interval is above 0 (95%, Bonferroni-adjusted to
1 - 0.05/m for m candidates), and (2) at no grid λ that the traffic uses is
the upper end of the 95% interval of the difference below 0. --force skips
the rule. The exit code is 0 whether a router was installed or not.
"""


def _add_retrain_arguments(parser: argparse.ArgumentParser) -> None:
    from ._overlap import DEFAULT_MIN_FEEDBACK

    parser.add_argument(
        "--since",
        help="use rows from this time on: an ISO date or time (local time) or a duration "
        "back from now such as 12h, 7d or 2w (default: the whole log)",
    )
    parser.add_argument(
        "--min-feedback", type=int, default=DEFAULT_MIN_FEEDBACK,
        help="explored calls with feedback a model needs to enter the new router; models "
        f"with fewer keep a raised exploration share (default {DEFAULT_MIN_FEEDBACK})",
    )
    parser.add_argument(
        "--min-new", type=int, default=0,
        help="exit at once, without training, when fewer than this many feedback rows "
        "arrived since the last retrain (for cron and timers; default 0)",
    )
    parser.add_argument(
        "--holdout", type=float, default=0.3,
        help="share of rows held out for the comparison, 0.05 to 0.8 (default 0.3)",
    )
    parser.add_argument("--dry-run", action="store_true", help="evaluate, install nothing")
    parser.add_argument(
        "--force", action="store_true",
        help="install the candidate with the best mean DR difference even when it fails "
        "the promotion rule",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--log", help="log file (default <data dir>/log.sqlite3)")
    parser.add_argument(
        "--prices",
        help="JSON file of USD prices that override litellm's and router.json's: "
        '{"model": {"input_per_million": 0.15, "output_per_million": 0.6}}',
    )
    parser.add_argument(
        "--plot", help="PNG of the estimated cost-quality curves "
        "(default <data dir>/retrain_curves.png)",
    )
    parser.add_argument("--no-plot", action="store_true", help="write no PNG")
    parser.add_argument(
        "--epochs", type=int, default=60,
        help="maximum training epochs of the DR policy (default 60)",
    )
    parser.add_argument(
        "--hidden", type=int, default=32, help="hidden units of the DR policy (default 32)"
    )
    parser.add_argument(
        "--bootstrap", type=int, default=1000,
        help="bootstrap resamples of the confidence intervals, >= 100 (default 1000)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def _cmd_retrain(args: argparse.Namespace) -> int:
    try:
        from trainer.retrain import run
    except ImportError as exc:
        print(
            f"smartllm retrain needs the trainer extra ({exc}): "
            "pip install 'smartllm[trainer]'",
            file=sys.stderr,
        )
        return 1
    return run(args)


def _cmd_rollback(args: argparse.Namespace) -> int:
    from . import _versions
    from ._errors import ConfigurationError

    try:
        before = _versions.current_version() or _versions.BUNDLED
        target = args.version or _versions.previous_version()
        _versions.set_current(target)
    except ConfigurationError as exc:
        print(f"smartllm rollback: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"smartllm rollback: cannot write {_versions.routers_dir()}: {exc}", file=sys.stderr)
        return 1
    print(f"active router: {target} (was {before})")
    return 0


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [name.strip() for name in value.split(",") if name.strip()]


def _cmd_route(args: argparse.Namespace) -> int:
    from ._client import Client
    from ._errors import SmartLLMError

    try:
        client = Client(router=args.router, random_state=args.seed)
        decision = client.route(
            args.prompt,
            budget=args.budget,
            willingness_to_pay=args.willingness_to_pay,
            models=_split(args.models),
            exclude=_split(args.exclude),
        )
    except SmartLLMError as exc:
        print(f"smartllm route: {exc}", file=sys.stderr)
        return 1

    report = {
        "model": decision.model,
        "probabilities": decision.probabilities,
        "predicted_cost": decision.predicted_cost,
        "predicted_quality": decision.predicted_quality,
        "lam": decision.lam,
        "budget": decision.budget,
        "willingness_to_pay": decision.willingness_to_pay,
        "over_budget": decision.over_budget,
        "policy_version": decision.policy_version,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0

    top = max(decision.probabilities, key=decision.probabilities.get)
    print(f"model: {decision.model} (drawn with probability {decision.propensity:.3f})")
    if decision.model != top:
        print(f"(a random draw from the probabilities below; the most likely is {top})")
    budget = "no budget" if decision.budget is None else f"budget {decision.budget:g} USD"
    if decision.willingness_to_pay is None:
        trade_off = "λ = 0: budget only, so the best predicted quality within it"
    else:
        trade_off = (
            f"λ = {decision.lam:.4g} quality points per USD "
            f"(willingness to pay {decision.willingness_to_pay:g} USD)"
        )
    print(f"{trade_off}; {budget}")
    if decision.over_budget:
        print("no model fits the budget: the cheapest was chosen")
    width = max(len("model"), *(len(name) for name in decision.probabilities))
    print(
        f"{'model':<{width}} {'probability':>11} {'predicted USD':>13} "
        f"{'predicted quality':>17}"
    )
    for name, probability in sorted(decision.probabilities.items(), key=lambda i: -i[1]):
        print(
            f"{name:<{width}} {probability:>11.3f} {decision.predicted_cost[name]:>13.6f} "
            f"{decision.predicted_quality[name]:>17.3f}"
        )
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from ._client import Client
    from ._errors import SmartLLMError

    try:
        client = Client()
        report = client.status()
        report.update(_router_versions())
        report.update(_exploration(client))
    except SmartLLMError as exc:
        print(f"smartllm status: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2))
        return 0

    print(f"requests: {report['requests']}")
    print(f"feedback: {report['feedback']} ({report['requests_with_feedback']} requests)")
    print(f"policy version: {report['policy_version']}")
    print(f"log write failures: {report['log_write_failures']}")
    names = [*report["per_model"], *report["exploration"]]
    width = max([len("model"), *(len(name) for name in names)])
    for name, totals in report["per_model"].items():
        print(f"  {name:<{width}} {totals['requests']:>8} requests {totals['cost']:>12.6f} USD")

    print(f"installed routers (active: {report['active_router']}):")
    for version in report["router_versions"]:
        mark = "*" if version == report["active_router"] else " "
        print(f"  {mark} {version}")
    print("exploration per model (explored calls with feedback, smallest propensity):")
    for name, item in report["exploration"].items():
        smallest = item["min_propensity"]
        shown = "never chosen" if smallest is None else f"{smallest:.4f}"
        print(f"  {name:<{width}} {item['with_feedback']:>8} {shown:>12}")
    if report["requests"] == 0:
        print("no requests logged yet: exploration data appears once requests are served")
        return 0
    for warning in report["exploration_warnings"]:
        print(f"warning: {warning}")
    return 0


def _router_versions() -> dict[str, object]:
    from . import _versions

    return {
        "active_router": _versions.current_version() or _versions.BUNDLED,
        "router_versions": [v.name for v in _versions.list_versions()],
    }


def _exploration(client: Client) -> dict:
    from ._errors import AssetError
    from ._overlap import exploration_warnings, model_overlap

    overlap = model_overlap(client._store.connection())
    # Models of the active router that the log never mentions have no data at all.
    try:
        router_models = client._router_source().current().models
    except AssetError:
        router_models = []
    for model in router_models:
        overlap.setdefault(
            model, {"allowed": 0, "chosen": 0, "with_feedback": 0, "min_propensity": None}
        )
    overlap = dict(sorted(overlap.items()))
    return {"exploration": overlap, "exploration_warnings": exploration_warnings(overlap)}


def _cmd_info(args: argparse.Namespace) -> int:
    from ._paths import asset_path, data_dir, file_sha256

    artefacts = {}
    for name in ("embedder.onnx", "tokenizer.json", "router.onnx", "router.json"):
        path = asset_path(name)
        if path.is_file():
            artefacts[name] = {
                "path": str(path),
                "bytes": path.stat().st_size,
                "sha256": file_sha256(path),
            }
        else:
            artefacts[name] = {"path": str(path), "missing": True}

    report = {"version": __version__, "data_dir": str(data_dir()), "artefacts": artefacts}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0

    print(f"smartllm {__version__}")
    print(f"data directory: {report['data_dir']}")
    print("bundled artefacts:")
    for name, entry in artefacts.items():
        if entry.get("missing"):
            print(f"  {name:<15} missing ({entry['path']})")
        else:
            print(f"  {name:<15} {entry['bytes']:>10} bytes  sha256 {entry['sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
