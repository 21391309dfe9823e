"""Routing regret from simulated observational logs: ``python -m trainer.benchmark``.

On each full-feedback dataset (see :mod:`trainer.benchmark_data`) the training
prompts are logged by a biased, prompt-dependent logging policy that favours
cheap models, keeping only the served model's outcome and its propensity. Every
method learns from those logs (or, for the full-feedback references, from the
whole training table), and its test regret is measured on the complete table
of held-out prompts for each λ (quality points per USD).

Writes ``results.md``, ``results.json`` and PNG plots into ``--out``.
``--quick`` is a small sanity run for CI: its figures are not benchmark results.
``--validation`` measures regret on held-out training prompts instead of the
test prompts, for choosing the trainer's defaults without looking at the test
split.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from ._bench_methods import MAIN_METHODS, VALIDATION_METHODS
from ._bench_report import (
    markdown_tables,
    plot_results,
    summarize_configs,
    summarize_curve,
    summarize_methods,
)
from ._bench_run import Settings, run_seed
from .benchmark_data import load_routerbench, load_zeroeval_mmlupro

logger = logging.getLogger("trainer.benchmark")

LAMBDAS = (0.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0)
# Settings shared by every policy network. They equal RouterTrainer's defaults
# and are listed so that results.json records them.
NETWORK = {
    "hidden": (64,),
    "epochs": 100,
    "patience": 15,
    "lr": 3e-3,
    "batch_size": 64,
    "p_min": 0.02,
    "n_folds": 3,
}
CURVE_METHODS = (
    "direct_method",
    "direct_method_linear_cost",
    "dr_softmax",
    "dr_softmax_clip",
    "dr_softmax_clip_linear",
)
LOADERS = {"routerbench": load_routerbench, "zeroeval_mmlupro": load_zeroeval_mmlupro}


def full_settings() -> Settings:
    return Settings(
        lambdas=LAMBDAS,
        seeds=(0, 1, 2, 3, 4),
        logging_configs=((1.0, 0.05), (1.0, 0.2), (3.0, 0.05), (3.0, 0.2)),
        curve_sizes=(1000, 3000, 10000, 30000),
        curve_config=(3.0, 0.05),
        curve_methods=CURVE_METHODS,
        network=NETWORK,
        max_train_prompts=3000,
        max_test_prompts=2000,
    )


def quick_settings() -> Settings:
    network = dict(NETWORK, epochs=10, patience=3)
    return Settings(
        lambdas=LAMBDAS,
        seeds=(0, 1),
        logging_configs=((3.0, 0.05),),
        curve_sizes=(500, 1500),
        curve_config=(3.0, 0.05),
        curve_methods=("direct_method", "dr_softmax"),
        network=network,
        max_train_prompts=800,
        max_test_prompts=400,
    )


def validation_settings() -> Settings:
    """Return the full settings on a 70/30 split of the training prompts, no curve."""
    return replace(full_settings(), curve_sizes=(), validation_share=0.3)


def _run_task(task):
    name, settings, seed = task
    dataset = LOADERS[name]()
    methods = dict(MAIN_METHODS)
    if settings.validation_share is not None:
        methods.update(VALIDATION_METHODS)
    return name, seed, run_seed(dataset, settings, methods, seed)


def run(datasets, settings, jobs=1):
    """Run the benchmark and return the summary dictionary written as JSON."""
    available = []
    for name in datasets:
        try:
            dataset = LOADERS[name]()
        except FileNotFoundError as error:
            logger.warning("skipping dataset %s: %s", name, error)
            continue
        available.append((name, dataset.models))
    tasks = [(name, settings, seed) for name, _ in available for seed in settings.seeds]
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            results = list(pool.map(_run_task, tasks))
    else:
        results = [_run_task(task) for task in tasks]

    summary = {"datasets": {}, "learning_curve": {}}
    for name, models in available:
        parts = [r for n, _, r in results if n == name]
        cells = [cell for part in parts for cell in part["cells"]]
        curve = [cell for part in parts for cell in part["curve"]]
        timings = {}
        for part in parts:
            for method, seconds in part["timings"].items():
                timings[method] = timings.get(method, 0.0) + seconds
        summary["datasets"][name] = {
            "lambdas": list(settings.lambdas),
            "models": models,
            "runs": len(cells),
            "sizes": parts[0]["sizes"],
            "methods": summarize_methods(cells),
            "per_config": summarize_configs(cells),
            "fit_seconds": {m: round(s, 1) for m, s in timings.items()},
            "calls_per_model": [c["calls_per_model"] for c in cells],
        }
        summary["learning_curve"][name] = summarize_curve(curve, settings.lambdas)
    return summary


def sanity_problems(summary):
    """Return a list of failed sanity checks (oracle regret 0, no negative regret)."""
    problems = []
    for name, data in summary["datasets"].items():
        for method, entry in data["methods"].items():
            regret = np.asarray(entry["regret_mean"])
            if method == "oracle" and np.abs(regret).max() > 1e-9:
                problems.append(f"{name}: oracle regret is {regret.tolist()}, expected 0")
            if regret.min() < -1e-9:
                problems.append(f"{name}: {method} has negative regret {regret.tolist()}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trainer.benchmark", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"),
                        help="folder for results.md, results.json and the PNG plots")
    parser.add_argument("--json", type=Path, default=None,
                        help="also write the JSON summary to this path")
    parser.add_argument("--quick", action="store_true",
                        help="small sanity run for CI (2 seeds, few epochs); not a result")
    parser.add_argument("--validation", action="store_true",
                        help="measure regret on 30%% of the training prompts held out "
                        "and skip the learning curve; the test prompts are not used")
    parser.add_argument("--datasets", nargs="+", default=list(LOADERS), choices=list(LOADERS),
                        help="datasets to run (default: all)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="worker processes, one (dataset, seed) task each")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    if args.quick and args.validation:
        parser.error("--quick and --validation cannot be combined")
    if args.quick:
        settings = quick_settings()
    elif args.validation:
        settings = validation_settings()
    else:
        settings = full_settings()
    start = time.perf_counter()
    summary = run(args.datasets, settings, args.jobs)
    summary["runtime_seconds"] = round(time.perf_counter() - start, 1)
    summary["settings"] = {
        "quick": args.quick,
        "validation_share": settings.validation_share,
        "seeds": list(settings.seeds),
        "logging_configs": [list(c) for c in settings.logging_configs],
        "curve_sizes": list(settings.curve_sizes),
        "curve_config": list(settings.curve_config),
        "network": {k: list(v) if isinstance(v, tuple) else v for k, v in settings.network.items()},
        "max_train_prompts": settings.max_train_prompts,
        "max_test_prompts": settings.max_test_prompts,
        "jobs": args.jobs,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }

    args.out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(summary, indent=1)
    (args.out / "results.json").write_text(text + "\n", encoding="utf-8")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n", encoding="utf-8")
    (args.out / "results.md").write_text(markdown_tables(summary), encoding="utf-8")
    plot_results(summary, args.out)
    logger.info("wrote results to %s in %.0f s", args.out, summary["runtime_seconds"])

    problems = sanity_problems(summary)
    for problem in problems:
        logger.error("sanity check failed: %s", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
