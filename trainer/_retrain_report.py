"""Plain-text report of a ``smartllm retrain`` run."""

from __future__ import annotations

from typing import Any

_REASONS = {
    "not_ok": "failed or abandoned calls",
    "no_feedback": "no feedback",
    "fallback": "served by a fallback model",
    "session_pinned": "chosen by a session pin",
    "other_embedder": "another embedder",
    "other_features": "another feature set",
    "under_explored_model": "served by a model below --min-feedback",
}


def format_report(report: dict[str, Any]) -> str:
    """Render the report of :func:`trainer.retrain.retrain` for a terminal."""
    if report.get("skipped"):
        return f"skipped: {report['reason']}"

    lines = [
        f"rows read: {report['rows_read']}, used: {report['rows_used']} "
        f"({report['rows_train']} training, {report['rows_held_out']} held out)",
    ]
    for key, count in report["excluded"].items():
        if count:
            lines.append(f"  left out, {_REASONS.get(key, key)}: {count}")
    lines.append(f"explored calls with feedback per model (need {report['min_feedback']}):")
    for model, count in sorted(report["feedback_per_model"].items()):
        mark = "" if model in report["router_models"] else "  under-explored, kept exploring"
        lines.append(f"  {model:<40} {count:>8}{mark}")

    lines.append("")
    lines.append(f"DR value on held-out rows (95% bootstrap CI); baseline: {report['baseline']}")
    names = list(report["values"])
    header = f"{'λ (quality/USD)':>16} " + " ".join(f"{n:>26}" for n in names)
    lines.append(header)
    for k, lam in enumerate(report["lambda_grid"]):
        cells = []
        for name in names:
            value = report["values"][name]
            cells.append(
                f"{value['value'][k]:>8.4f} [{value['ci_low'][k]:.4f}, {value['ci_high'][k]:.4f}]"
            )
        lines.append(f"{lam:>16g} " + " ".join(f"{c:>26}" for c in cells))

    lines.append("")
    lines.append("candidate minus current router, mean over the λ grid weighted by traffic:")
    for name, difference in report["differences"].items():
        verdict = "passes" if difference["passes"] else "fails"
        worse = difference["significantly_worse_at"]
        note = f", significantly worse at λ = {worse}" if worse else ""
        lines.append(
            f"  {name:<14} {difference['mean_difference']:+.4f} "
            f"[{difference['mean_ci_low']:+.4f}, {difference['mean_ci_high']:+.4f}] "
            f"({difference['mean_ci_level']:.1%} CI) {verdict}{note}"
        )
    lines.append("")
    if report.get("plot"):
        lines.append(f"cost-quality curves: {report['plot']}")
    status = "promoted" if report["promoted"] else "kept"
    lines.append(f"{status}: {report['reason']}; active router: {report['version'] or 'bundled'}")
    return "\n".join(lines)
