"""The ``smartllm`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from ._version import __version__

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
    return int(args.handler(args) or 0)


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

    status = commands.add_parser("status", help="request, feedback and cost totals of the log")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=_cmd_status)
    return parser


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

    print(f"model: {decision.model}")
    print(f"λ = {decision.lam:.4g} quality points per USD, budget: {decision.budget}")
    if decision.over_budget:
        print("no model fits the budget: the cheapest was chosen")
    print(f"{'model':<48} {'probability':>11} {'cost USD':>12} {'quality':>8}")
    for name, probability in sorted(decision.probabilities.items(), key=lambda i: -i[1]):
        print(
            f"{name:<48} {probability:>11.3f} {decision.predicted_cost[name]:>12.6f} "
            f"{decision.predicted_quality[name]:>8.3f}"
        )
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from ._client import Client
    from ._errors import SmartLLMError

    try:
        report = Client().status()
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
    for name, totals in report["per_model"].items():
        print(f"  {name:<48} {totals['requests']:>8} requests {totals['cost']:>12.6f} USD")
    return 0


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
