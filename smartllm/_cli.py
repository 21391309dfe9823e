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
    return parser


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
