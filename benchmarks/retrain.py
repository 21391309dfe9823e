"""Time ``smartllm retrain`` on a synthetic log; print wall time per step and peak RSS.

Default workload: 100,000 logged requests with 392-wide float16 router
features, 8 models, logged propensities and feedback on 80% of the rows,
written to a fresh SMARTLLM_HOME in a temporary directory. Example:

    python benchmarks/retrain.py
    python benchmarks/retrain.py --rows 20000 --epochs 20

Targets: at most 120 s of retraining and 4 GB peak RSS on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 120.0
TARGET_RSS_MB = 4096.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="logged requests")
    parser.add_argument("--models", type=int, default=8, help="number of models")
    parser.add_argument("--epochs", type=int, default=60, help="maximum epochs")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    return parser.parse_args()


def peak_rss_mb() -> float:
    """Return this process's peak resident set size in MiB (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 if sys.platform != "darwin" else peak / 2**20


def main() -> int:
    args = parse_args()
    home = Path(tempfile.mkdtemp(prefix="smartllm-retrain-bench-"))
    os.environ["SMARTLLM_HOME"] = str(home)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

    from smartllm._store import LOG_FILE_NAME
    from trainer._retrain_candidates import FitSettings
    from trainer._retrain_synth import write_synthetic_log
    from trainer.retrain import RetrainOptions, retrain

    start = time.perf_counter()
    write_synthetic_log(home / LOG_FILE_NAME, args.rows, args.models, seed=args.seed)
    synth_seconds = time.perf_counter() - start
    rss_after_synth = peak_rss_mb()

    options = RetrainOptions(
        n_boot=args.bootstrap,
        plot=home / "curves.png",
        fit=FitSettings(epochs=args.epochs, random_state=args.seed),
    )
    start = time.perf_counter()
    report = retrain(options)
    seconds = time.perf_counter() - start
    rss = peak_rss_mb()

    print(f"rows: {args.rows}, models: {args.models}, cpus: {os.cpu_count()}, "
          f"load average: {os.getloadavg()[0]:.1f}")
    print(f"synthesise log: {synth_seconds:.1f} s (peak RSS {rss_after_synth:.0f} MiB)")
    for step, value in report["timings_s"].items():
        print(f"  {step:<10} {value:>8.1f} s")
    print(f"retrain wall time: {seconds:.1f} s (target {TARGET_SECONDS:.0f} s)")
    print(f"peak RSS: {rss:.0f} MiB (target {TARGET_RSS_MB:.0f} MiB)")
    print(f"rows used: {report['rows_used']}, promoted: {report['promoted']} "
          f"({report['reason']})")
    ok = seconds <= TARGET_SECONDS and rss <= TARGET_RSS_MB
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
