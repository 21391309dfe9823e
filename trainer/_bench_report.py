"""Aggregation of benchmark cells into the JSON summary, markdown tables and plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np

REFERENCE = "best_single_full"


def _stack(cells, method, key):
    return np.stack([cell["scores"][method][key] for cell in cells])


def gap_closed(cells, method):
    """Return the share of the best-single-to-oracle gap closed, per cell and λ."""
    policy = _stack(cells, method, "utility")
    best = _stack(cells, REFERENCE, "utility")
    oracle = _stack(cells, "oracle", "utility")
    return (policy - best) / np.maximum(oracle - best, 1e-12)


def summarize_methods(cells):
    """Return mean and std over cells of regret and gap closed, and mean quality and cost."""
    methods = {}
    for method in cells[0]["scores"]:
        regret = _stack(cells, method, "regret")
        gap = gap_closed(cells, method)
        methods[method] = {
            "regret_mean": regret.mean(axis=0).tolist(),
            "regret_std": regret.std(axis=0, ddof=1).tolist() if len(cells) > 1 else [0.0] * regret.shape[1],
            "gap_closed_mean": gap.mean(axis=0).tolist(),
            "gap_closed_std": gap.std(axis=0, ddof=1).tolist() if len(cells) > 1 else [0.0] * gap.shape[1],
            "quality": _stack(cells, method, "quality").mean(axis=0).tolist(),
            "cost": _stack(cells, method, "cost").mean(axis=0).tolist(),
        }
    return methods


def summarize_configs(cells, method="dr_softmax", baseline="direct_method"):
    """Return, per (β, ε), the paired regret difference of two methods and its win count."""
    if method not in cells[0]["scores"] or baseline not in cells[0]["scores"]:
        return []
    rows = []
    for beta, epsilon in sorted({(c["beta"], c["epsilon"]) for c in cells}):
        group = [c for c in cells if (c["beta"], c["epsilon"]) == (beta, epsilon)]
        difference = _stack(group, method, "regret") - _stack(group, baseline, "regret")
        calls = np.array([c["calls_per_model"] for c in group])
        rows.append(
            {
                "beta": beta,
                "epsilon": epsilon,
                "runs": len(group),
                "difference_mean": difference.mean(axis=0).tolist(),
                "difference_std": difference.std(axis=0, ddof=1).tolist() if len(group) > 1 else None,
                "method_wins": int((difference < 0).sum()),
                "paired_cases": int(difference.size),
                "min_calls_per_model": int(calls.min()),
                "median_calls_per_model": float(np.median(calls)),
            }
        )
    return rows


def summarize_curve(curve, lambdas):
    """Return per log size and method the regret mean and std (per λ and averaged)."""
    if not curve:
        return {}
    sizes = sorted({cell["n_rows"] for cell in curve})
    methods = [m for m in curve[0]["scores"] if m != "oracle"]
    result = {"n_rows": sizes, "lambdas": list(lambdas), "methods": {}}
    for method in methods:
        entry = {"regret_mean": [], "regret_std": [], "avg_regret_mean": [], "avg_regret_std": []}
        for size in sizes:
            regret = _stack([c for c in curve if c["n_rows"] == size], method, "regret")
            average = regret.mean(axis=1)
            std = regret.std(axis=0, ddof=1) if regret.shape[0] > 1 else np.zeros(regret.shape[1])
            entry["regret_mean"].append(regret.mean(axis=0).tolist())
            entry["regret_std"].append(std.tolist())
            entry["avg_regret_mean"].append(float(average.mean()))
            entry["avg_regret_std"].append(float(average.std(ddof=1)) if average.size > 1 else 0.0)
        result["methods"][method] = entry
    result["crossing_n_rows"] = crossing_point(result)
    return result


def crossing_point(curve, method="dr_softmax", baseline="direct_method"):
    """Return the smallest log size at which ``method`` has lower mean regret, or None."""
    methods = curve.get("methods", {})
    if method not in methods or baseline not in methods:
        return None
    for size, ours, theirs in zip(
        curve["n_rows"], methods[method]["avg_regret_mean"], methods[baseline]["avg_regret_mean"]
    ):
        if ours < theirs:
            return size
    return None


def _fmt(mean, std=None, digits=3):
    if std is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown_tables(summary):
    """Return the markdown report for every dataset in ``summary``."""
    lines = []
    for name, data in summary["datasets"].items():
        lambdas = data["lambdas"]
        header = " | ".join(f"λ={lam:g}" for lam in lambdas)
        lines += [
            f"### {name}",
            "",
            f"{data['sizes']['train_prompts']} training prompts, "
            f"{data['sizes']['test_prompts']} test prompts, {len(data['models'])} models; "
            f"{data['runs']} runs (seeds x logging configs). Test regret, mean ± std:",
            "",
            f"| method | {header} |",
            "|---" * (len(lambdas) + 1) + "|",
        ]
        for method, entry in data["methods"].items():
            cells = [_fmt(m, s) for m, s in zip(entry["regret_mean"], entry["regret_std"])]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines += ["", f"Share of the gap between {REFERENCE} and the oracle closed:", ""]
        lines += [f"| method | {header} |", "|---" * (len(lambdas) + 1) + "|"]
        for method, entry in data["methods"].items():
            cells = [_fmt(m, s, 2) for m, s in zip(entry["gap_closed_mean"], entry["gap_closed_std"])]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines += ["", "Mean quality / mean cost (USD per call):", ""]
        lines += [f"| method | {header} |", "|---" * (len(lambdas) + 1) + "|"]
        for method, entry in data["methods"].items():
            cells = [f"{q:.3f} / {c:.5f}" for q, c in zip(entry["quality"], entry["cost"])]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        if data["per_config"]:
            lines += ["", "dr_softmax minus direct_method regret per logging config "
                      "(negative: DR better):", ""]
            lines += [f"| β, ε | {header} | DR wins | min / median calls per model |"]
            lines += ["|---" * (len(lambdas) + 3) + "|"]
            for row in data["per_config"]:
                stds = row["difference_std"] or [0.0] * len(lambdas)
                cells = [_fmt(m, s) for m, s in zip(row["difference_mean"], stds)]
                lines.append(
                    f"| {row['beta']:g}, {row['epsilon']:g} | " + " | ".join(cells)
                    + f" | {row['method_wins']}/{row['paired_cases']}"
                    + f" | {row['min_calls_per_model']} / {row['median_calls_per_model']:g} |"
                )
        lines.append("")
    for name, curve in summary["learning_curve"].items():
        if not curve:
            continue
        lines += [
            f"### Learning curve: {name}",
            "",
            "Test regret averaged over the λ grid, mean ± std over seeds:",
            "",
            "| method | " + " | ".join(f"{n} rows" for n in curve["n_rows"]) + " |",
            "|---" * (len(curve["n_rows"]) + 1) + "|",
        ]
        for method, entry in curve["methods"].items():
            cells = [_fmt(m, s) for m, s in zip(entry["avg_regret_mean"], entry["avg_regret_std"])]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        crossing = curve["crossing_n_rows"]
        lines += [
            "",
            "dr_softmax first has lower mean regret than direct_method at: "
            + (f"{crossing} rows" if crossing else "no size tested"),
            "",
        ]
    return "\n".join(lines)


def plot_results(summary, out_dir: Path, prefix="benchmark_"):
    """Write cost-quality and learning-curve PNGs; return the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    shown = ["oracle", "best_single_full", "direct_method", "dr_softmax",
             "dr_softmax_per_lambda", "dr_classification", "knn", "full_feedback",
             "full_feedback_decoupled", "dr_softmax_clip_linear"]
    for name, data in summary["datasets"].items():
        figure, axis = plt.subplots(figsize=(7, 5))
        for method in shown:
            if method not in data["methods"]:
                continue
            entry = data["methods"][method]
            axis.plot(entry["cost"], entry["quality"], marker="o", markersize=3, label=method)
        axis.set_xscale("log")
        axis.set_xlabel("mean cost per prompt (USD, log scale)")
        axis.set_ylabel("mean quality")
        axis.set_title(f"{name}: cost and quality over λ = {data['lambdas'][0]:g}..{data['lambdas'][-1]:g}")
        axis.legend(fontsize=7)
        axis.grid(alpha=0.3)
        path = out_dir / f"{prefix}cost_quality_{name}.png"
        figure.tight_layout()
        figure.savefig(path, dpi=110)
        plt.close(figure)
        paths.append(path)

    for name, curve in summary["learning_curve"].items():
        if not curve:
            continue
        figure, axis = plt.subplots(figsize=(6, 4))
        for method, entry in curve["methods"].items():
            axis.errorbar(curve["n_rows"], entry["avg_regret_mean"], yerr=entry["avg_regret_std"],
                          marker="o", capsize=3, label=method)
        axis.set_xscale("log")
        axis.set_xlabel("logged rows")
        axis.set_ylabel("test regret, mean over λ grid")
        axis.set_title(f"{name}: regret against log size")
        axis.legend(fontsize=7)
        axis.grid(alpha=0.3)
        path = out_dir / f"{prefix}learning_curve_{name}.png"
        figure.tight_layout()
        figure.savefig(path, dpi=110)
        plt.close(figure)
        paths.append(path)
    return paths
