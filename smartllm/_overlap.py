"""Per-model exploration statistics of the request log.

Off-policy retraining can only judge a model on rows where the logging policy
chose it with a known, non-zero probability. These queries count such rows
per model, so the client can keep exploring models with too little feedback
and ``smartllm status`` can warn about models without exploration data.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

# Logged calls with feedback a model needs before retraining includes it in a
# router and the client stops raising its exploration share.
DEFAULT_MIN_FEEDBACK = 100

_FEEDBACK_COUNTS = (
    "SELECT r.served_model, count(*) FROM requests AS r"
    " WHERE r.status = 'ok' AND r.served_model = r.chosen_model"
    " AND r.session_pinned = 0"
    " AND EXISTS (SELECT 1 FROM feedback AS f WHERE f.request_id = r.id)"
    " GROUP BY r.served_model"
)


def feedback_counts(connection: sqlite3.Connection) -> dict[str, int]:
    """Return, per model, the successful explored calls that have feedback.

    A call counts when the model was both chosen and served (no fallback) and
    the choice was a random draw, not a session pin.
    """
    return {model: int(count) for model, count in connection.execute(_FEEDBACK_COUNTS)}


def model_overlap(connection: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    """Return per-model exploration statistics of the whole log.

    For every model that was ever allowed: ``allowed`` (rows where it could be
    chosen), ``chosen`` (rows where the draw picked it, pins excluded),
    ``with_feedback`` (as :func:`feedback_counts`) and ``min_propensity``
    (smallest logged probability among its chosen rows, None when never
    chosen).
    """
    stats: dict[str, dict[str, Any]] = {}

    def entry(model: str) -> dict[str, Any]:
        return stats.setdefault(
            model,
            {"allowed": 0, "chosen": 0, "with_feedback": 0, "min_propensity": None},
        )

    for allowed, count in connection.execute(
        "SELECT allowed_models, count(*) FROM requests WHERE session_pinned = 0 "
        "GROUP BY allowed_models"
    ):
        try:
            models = json.loads(allowed)
        except (TypeError, ValueError):
            continue
        for model in models if isinstance(models, list) else []:
            entry(str(model))["allowed"] += int(count)

    for model, chosen, smallest in connection.execute(
        "SELECT chosen_model, count(*), min(propensity) FROM requests "
        "WHERE session_pinned = 0 GROUP BY chosen_model"
    ):
        item = entry(model)
        item["chosen"] = int(chosen)
        item["min_propensity"] = float(smallest)

    for model, count in feedback_counts(connection).items():
        entry(model)["with_feedback"] = count
    return dict(sorted(stats.items()))


def exploration_warnings(
    overlap: dict[str, dict[str, Any]], min_feedback: int = DEFAULT_MIN_FEEDBACK
) -> list[str]:
    """Return one warning per model without exploration data or with too little feedback."""
    warnings = []
    for model, item in overlap.items():
        if item["allowed"] == 0:
            warnings.append(
                f"{model} is in the active router but the log has no request that "
                "allowed it: there is no exploration data for it"
            )
        elif item["chosen"] == 0:
            warnings.append(
                f"{model} was allowed in {item['allowed']} requests but never chosen: "
                "the log has no exploration data for it, so retraining cannot judge it; "
                "keep exploration above 0"
            )
        elif item["with_feedback"] < min_feedback:
            warnings.append(
                f"{model} has {item['with_feedback']} calls with feedback, fewer than "
                f"{min_feedback}: the client keeps exploring it and retraining leaves "
                "it out of the router"
            )
    return warnings
