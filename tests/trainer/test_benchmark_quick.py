"""Sanity checks of ``python -m trainer.benchmark --quick`` (not a quality bar)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trainer import benchmark
from trainer.benchmark_data import DEFAULT_ROUTERBENCH_DIR

pytestmark = pytest.mark.skipif(
    not (DEFAULT_ROUTERBENCH_DIR / "routerbench.npz").is_file(),
    reason="data/routerbench is missing; build it with scripts/build_routerbench.py",
)

EXPECTED_METHODS = {
    "oracle",
    "best_single",
    "random",
    "direct_method",
    "ipw",
    "dr_classification",
    "dr_softmax",
    "dr_softmax_per_lambda",
    "knn",
    "full_feedback",
    "full_feedback_decoupled",
}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("benchmark")
    json_path = out / "copy" / "summary.json"
    exit_code = benchmark.main(["--quick", "--out", str(out), "--json", str(json_path)])
    return exit_code, out, json_path


def test_quick_run_exits_zero(quick_run):
    """The run finishes and its own sanity checks pass."""
    exit_code, _, _ = quick_run
    assert exit_code == 0


def test_quick_run_writes_files(quick_run):
    """Markdown, JSON (both paths) and at least one PNG per dataset are written."""
    _, out, json_path = quick_run
    assert (out / "results.md").read_text(encoding="utf-8").strip()
    assert (out / "results.json").is_file()
    assert json_path.is_file()
    summary = json.loads(json_path.read_text(encoding="utf-8"))
    for name in summary["datasets"]:
        assert (out / f"benchmark_cost_quality_{name}.png").stat().st_size > 0
        assert (out / f"benchmark_learning_curve_{name}.png").stat().st_size > 0


def test_quick_run_json_schema(quick_run):
    """Every dataset lists the λ grid and per-method regret, quality and cost arrays."""
    _, _, json_path = quick_run
    summary = json.loads(json_path.read_text(encoding="utf-8"))
    assert "routerbench" in summary["datasets"]
    assert "learning_curve" in summary
    for name, data in summary["datasets"].items():
        n_lambdas = len(data["lambdas"])
        assert EXPECTED_METHODS <= set(data["methods"]), name
        for method, entry in data["methods"].items():
            for key in ("regret_mean", "regret_std", "quality", "cost"):
                assert len(entry[key]) == n_lambdas, (name, method, key)


def test_oracle_regret_is_zero(quick_run):
    _, _, json_path = quick_run
    summary = json.loads(json_path.read_text(encoding="utf-8"))
    for name, data in summary["datasets"].items():
        oracle = np.asarray(data["methods"]["oracle"]["regret_mean"])
        assert np.allclose(oracle, 0.0, atol=1e-12), name


def test_regret_is_never_negative(quick_run):
    _, _, json_path = quick_run
    summary = json.loads(json_path.read_text(encoding="utf-8"))
    for name, data in summary["datasets"].items():
        for method, entry in data["methods"].items():
            assert min(entry["regret_mean"]) >= -1e-12, (name, method)
        for method, entry in summary["learning_curve"][name]["methods"].items():
            for regret in entry["regret_mean"]:
                assert min(regret) >= -1e-12, (name, method)
