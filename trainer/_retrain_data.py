"""Read the request log for ``smartllm retrain``: rows, feedback, prices, splits."""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from smartllm._features import FEATURE_SET
from smartllm._pricing import litellm_price, router_price
from smartllm._router import SUPPORTED_FEATURES
from smartllm._store import SCHEMA_VERSION

logger = logging.getLogger(__name__)

_ROWS = (
    "SELECT r.id, r.created_at, r.embedder_sha256, r.features, r.embedding,"
    " r.allowed_models, r.chosen_model, r.served_model, r.propensity, r.status,"
    " r.session_pinned, r.input_tokens, r.output_tokens, r.cost, lf.score, r.lam"
    " FROM requests AS r LEFT JOIN latest_feedback AS lf ON lf.request_id = r.id"
    " WHERE r.created_at >= ?"
)


class RetrainError(Exception):
    """The log cannot be used for retraining. The message states the fix."""


@dataclass
class Exclusions:
    """Counts of log rows left out of retraining, by reason."""

    not_ok: int = 0  # the call failed or the stream was abandoned
    no_feedback: int = 0
    fallback: int = 0  # served by a fallback model, whose propensity is unknown
    session_pinned: int = 0  # chosen by a session pin, not a random draw
    other_embedder: int = 0
    other_features: int = 0
    under_explored_model: int = 0  # served by a model below --min-feedback

    def as_dict(self) -> dict[str, int]:
        """Return the counts keyed by reason."""
        return dict(self.__dict__)


@dataclass
class LoggedRows:
    """Usable logged calls with feedback, as arrays over ``models``.

    ``models`` lists every model that served or was allowed in a usable row;
    ``chosen`` indexes it. ``cost`` is recomputed from the logged tokens and
    the current prices (see :func:`load_prices`).
    """

    ids: list[str]
    X: np.ndarray  # (n, d) float32 router features
    models: list[str]
    chosen: np.ndarray  # (n,) int64
    quality: np.ndarray  # (n,) feedback score in [0, 1]
    cost: np.ndarray  # (n,) USD
    propensity: np.ndarray  # (n,)
    output_tokens: np.ndarray  # (n,)
    input_tokens: np.ndarray  # (n,)
    allowed: np.ndarray  # (n, K) bool
    rows_read: int
    exclusions: Exclusions
    feedback_max_id: int
    price_sources: dict[str, str] = field(default_factory=dict)
    lam: np.ndarray | None = None  # (n,) λ of each logged request, NaN if unknown

    def feedback_counts(self) -> dict[str, int]:
        """Return the usable calls with feedback per model."""
        counts = np.bincount(self.chosen, minlength=len(self.models))
        return {model: int(c) for model, c in zip(self.models, counts, strict=True)}

    def subset(self, rows: np.ndarray) -> LoggedRows:
        """Return the rows selected by an index or boolean array."""
        index = np.flatnonzero(rows) if rows.dtype == bool else rows
        return LoggedRows(
            [self.ids[i] for i in index], self.X[index], self.models,
            self.chosen[index], self.quality[index], self.cost[index],
            self.propensity[index], self.output_tokens[index],
            self.input_tokens[index], self.allowed[index],
            self.rows_read, self.exclusions, self.feedback_max_id, self.price_sources,
            None if self.lam is None else self.lam[index],
        )


def open_log(path: Path) -> sqlite3.Connection:
    """Open the log read-only after checking that it exists and its schema is known."""
    if not path.is_file():
        raise RetrainError(
            f"no log at {path}: route requests through smartllm.Client and send "
            "feedback first, or set SMARTLLM_HOME (or --log) to where the log is"
        )
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        connection.close()
        raise RetrainError(
            f"the log {path} has schema version {version}, newer than the "
            f"{SCHEMA_VERSION} this smartllm reads: upgrade smartllm "
            "(pip install -U 'smartllm[trainer]')"
        )
    if version < SCHEMA_VERSION:
        connection.close()
        raise RetrainError(
            f"the log {path} has schema version {version}, older than "
            f"{SCHEMA_VERSION}: open it once with smartllm.Client to migrate it"
        )
    return connection


def feedback_max_id(connection: sqlite3.Connection) -> int:
    """Return the id of the newest feedback row, 0 when there is none."""
    (value,) = connection.execute("SELECT coalesce(max(id), 0) FROM feedback").fetchone()
    return int(value)


def count_new_feedback(connection: sqlite3.Connection, after_id: int) -> int:
    """Return how many feedback rows have an id above ``after_id``."""
    (value,) = connection.execute(
        "SELECT count(*) FROM feedback WHERE id > ?", (after_id,)
    ).fetchone()
    return int(value)


def load_prices(
    models: list[str], router_prices: dict, overrides: dict[str, tuple[float, float]]
) -> dict[str, tuple[float, float, str]]:
    """Return (input, output) USD per token and the source for every priced model.

    A price comes from ``overrides`` (the --prices file), then litellm's price
    map, then the current router's ``router.json``. Models without any price
    are left out here; :func:`to_arrays` then infers one from the logged costs
    with :func:`implied_price`, or keeps the logged costs.
    """
    prices = {}
    for model in models:
        if model in overrides:
            prices[model] = (*overrides[model], "--prices")
            continue
        price = litellm_price(model) or router_price(model, router_prices)
        if price is not None:
            prices[model] = (price.input_per_token, price.output_per_token, price.source)
    return prices


def read_rows(
    connection: sqlite3.Connection,
    since: float,
    embedder_sha256: str,
    progress: bool,
) -> tuple[list[tuple], Exclusions, int]:
    """Read the log rows created at or after ``since`` and sort out unusable ones.

    Returns the usable rows, the exclusion counts and the number of rows read.
    """
    from tqdm.auto import tqdm

    (total,) = connection.execute(
        "SELECT count(*) FROM requests WHERE created_at >= ?", (since,)
    ).fetchone()
    exclusions = Exclusions()
    usable = []
    cursor = connection.execute(_ROWS, (since,))
    for row in tqdm(cursor, total=total, desc="read log", unit="row", disable=not progress):
        (_, _, embedder, features, _, _, chosen, served, _, status, pinned, *_) = row
        score = row[14]
        if status != "ok" or served is None:
            exclusions.not_ok += 1
        elif score is None:
            exclusions.no_feedback += 1
        elif served != chosen:
            exclusions.fallback += 1
        elif pinned:
            exclusions.session_pinned += 1
        elif embedder != embedder_sha256:
            exclusions.other_embedder += 1
        elif features != FEATURE_SET:
            exclusions.other_features += 1
        else:
            usable.append(row)
    return usable, exclusions, int(total)


def to_arrays(
    rows: list[tuple],
    prices_for: dict[str, tuple[float, float, str]] | None,
    router_prices: dict,
    overrides: dict[str, tuple[float, float]],
) -> tuple[LoggedRows, dict[str, tuple[float, float, str]]]:
    """Convert usable rows to arrays; return them with the price table used."""
    allowed_lists = [json.loads(row[5]) for row in rows]
    names = {row[7] for row in rows}
    for allowed in allowed_lists:
        names.update(allowed)
    models = sorted(names)
    index = {model: i for i, model in enumerate(models)}
    prices = dict(prices_for or load_prices(models, router_prices, overrides))

    n = len(rows)
    width = SUPPORTED_FEATURES[FEATURE_SET]
    blob = b"".join(row[4] for row in rows)
    X = np.frombuffer(blob, dtype="<f2").reshape(n, width).astype(np.float32)
    chosen = np.array([index[row[7]] for row in rows], dtype=np.int64)
    allowed = np.zeros((n, len(models)), dtype=bool)
    for i, names_allowed in enumerate(allowed_lists):
        allowed[i, [index[m] for m in names_allowed]] = True
    allowed[np.arange(n), chosen] = True

    input_tokens = np.array([row[11] if row[11] is not None else -1 for row in rows], float)
    output_tokens = np.array([row[12] if row[12] is not None else -1 for row in rows], float)
    logged_cost = np.array([row[13] if row[13] is not None else 0.0 for row in rows], float)
    for t, model in enumerate(models):
        if model not in prices:
            implied = implied_price(input_tokens, output_tokens, logged_cost, chosen == t)
            if implied is not None:
                prices[model] = (*implied, "implied by logged costs")
    price_in = np.array([prices.get(m, (np.nan, np.nan, ""))[0] for m in models])
    price_out = np.array([prices.get(m, (np.nan, np.nan, ""))[1] for m in models])
    recomputed = input_tokens * price_in[chosen] + output_tokens * price_out[chosen]
    keep_logged = ~np.isfinite(recomputed) | (input_tokens < 0) | (output_tokens < 0)
    cost = np.where(keep_logged, logged_cost, recomputed)

    data = LoggedRows(
        ids=[row[0] for row in rows],
        X=X,
        models=models,
        chosen=chosen,
        quality=np.array([row[14] for row in rows], dtype=np.float64),
        cost=cost,
        propensity=np.array([row[8] for row in rows], dtype=np.float64),
        output_tokens=np.maximum(output_tokens, 0.0),
        input_tokens=np.maximum(input_tokens, 0.0),
        allowed=allowed,
        rows_read=0,
        exclusions=Exclusions(),
        feedback_max_id=0,
        price_sources={m: prices[m][2] if m in prices else "logged cost" for m in models},
        lam=np.array(
            [row[15] if len(row) > 15 and row[15] is not None else np.nan for row in rows],
            dtype=np.float64,
        ),
    )
    return data, prices


def implied_price(
    input_tokens: np.ndarray, output_tokens: np.ndarray, cost: np.ndarray, rows: np.ndarray
) -> tuple[float, float] | None:
    """Return the (input, output) USD per token that best explain a model's logged costs.

    Least squares of cost on the two token counts over the rows where the model
    served, or None with fewer than 2 rows or a negative price.
    """
    rows = rows & (input_tokens >= 0) & (output_tokens >= 0)
    if rows.sum() < 2:
        return None
    design = np.column_stack([input_tokens[rows], output_tokens[rows]])
    solution, *_ = np.linalg.lstsq(design, cost[rows], rcond=None)
    if not np.all(np.isfinite(solution)) or np.any(solution < 0):
        return None
    return float(solution[0]), float(solution[1])


def holdout_mask(ids: list[str], fraction: float) -> np.ndarray:
    """Mark about ``fraction`` of rows as held out, chosen by a hash of the request id.

    A row stays on the same side across retrains of a growing log.
    """
    buckets = np.array(
        [int.from_bytes(hashlib.sha256(i.encode()).digest()[:4], "big") for i in ids],
        dtype=np.float64,
    )
    return buckets / 2**32 < fraction
