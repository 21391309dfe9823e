"""Router artefacts: loading, validation and the switch to a newly installed one.

A router is a directory with ``router.onnx`` and ``router.json``. The ONNX
graph takes ``embedding`` (N, input_dim) float32 router features and ``lam``
(N,) float32, and returns ``logits``, ``quality`` and ``output_tokens``, each
(N, K) over the models listed in ``router.json``.

Without an explicit router, the client uses the installed router named by
``<data_dir>/routers/CURRENT`` when that file exists and the router passes
validation, and the bundled router otherwise.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._errors import AssetError
from ._features import FEATURE_NAMES, FEATURE_SET
from ._paths import asset_path, data_dir, file_sha256

if TYPE_CHECKING:
    import onnxruntime

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
BARE_EMBEDDING_FEATURES = "minilm384"
EMBEDDING_DIM = 384
# Input widths of the feature sets this client can compute.
SUPPORTED_FEATURES = {
    FEATURE_SET: EMBEDDING_DIM + len(FEATURE_NAMES),
    BARE_EMBEDDING_FEATURES: EMBEDDING_DIM,
}
OUTPUT_NAMES = ("logits", "quality", "output_tokens")
POINTER_NAME = "CURRENT"


@dataclass(frozen=True)
class RouterPrediction:
    """Router outputs for one request, one entry per router model."""

    logits: np.ndarray
    quality: np.ndarray
    output_tokens: np.ndarray


@dataclass
class Router:
    """A loaded router: its manifest and an ONNX session."""

    directory: Path
    manifest: dict[str, Any]
    version: str
    onnx_sha256: str
    session: onnxruntime.InferenceSession = field(repr=False)

    @property
    def models(self) -> list[str]:
        """Model ids in the column order of the ONNX outputs."""
        return list(self.manifest["models"])

    @property
    def features(self) -> str:
        """Name of the feature set the router reads."""
        return str(self.manifest["features"])

    @property
    def prices(self) -> dict[str, Any]:
        """The ``prices`` table of ``router.json``, empty when absent."""
        prices = self.manifest.get("prices")
        return prices if isinstance(prices, dict) else {}

    @property
    def temperature(self) -> float:
        """Softmax temperature recorded by the trainer, 1.0 when absent."""
        value = self.manifest.get("softmax_temperature", 1.0)
        if isinstance(value, (int, float)) and math.isfinite(value) and value > 0:
            return float(value)
        return 1.0

    def predict(self, features: np.ndarray, lam: float) -> RouterPrediction:
        """Run the router on one (1, input_dim) feature row at cost sensitivity λ."""
        outputs = self.session.run(
            list(OUTPUT_NAMES),
            {
                "embedding": np.ascontiguousarray(features, dtype=np.float32),
                "lam": np.array([lam], dtype=np.float32),
            },
        )
        logits, quality, tokens = (np.asarray(o, dtype=np.float64)[0] for o in outputs)
        return RouterPrediction(logits, quality, tokens)


def bundled_router_dir() -> Path:
    """Return the directory of the router shipped with the package."""
    return asset_path("router.json").parent


def load_router(
    directory: Path, embedder_sha256: str, version: str | None = None, threads: int = 1
) -> Router:
    """Load and validate a router directory; raise AssetError on any problem.

    ``version`` names an installed router. Without it the version is
    ``bundled-<first 12 hex of the ONNX sha256>`` for the bundled router and
    the manifest's ``version`` (else ``custom-<12 hex>``) for another directory.
    """
    manifest_path = directory / "router.json"
    onnx_path = directory / "router.onnx"
    manifest = _read_manifest(manifest_path)
    _check_manifest(manifest, manifest_path, embedder_sha256)

    if not onnx_path.is_file():
        raise AssetError(f"router file {onnx_path} is missing")
    onnx_sha256 = file_sha256(onnx_path)
    recorded = manifest.get("onnx_sha256")
    if recorded and recorded != onnx_sha256:
        raise AssetError(
            f"router file {onnx_path} has sha256 {onnx_sha256} but {manifest_path} "
            f"records {recorded}; the files do not belong together: reinstall the router"
        )

    if version is None:
        if directory.resolve() == bundled_router_dir().resolve():
            version = f"bundled-{onnx_sha256[:12]}"
        else:
            version = str(manifest.get("version") or f"custom-{onnx_sha256[:12]}")

    session = _create_session(onnx_path, threads)
    _check_session(session, onnx_path, int(manifest["input_dim"]), len(manifest["models"]))
    logger.debug("router %s loaded from %s", version, directory)
    return Router(directory, manifest, version, onnx_sha256, session)


def _read_manifest(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise AssetError(f"router manifest {path} is missing")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AssetError(
            f"cannot read the router manifest {path}: {exc}; reinstall the router, "
            "or smartllm for the bundled one"
        ) from exc
    if not isinstance(manifest, dict):
        raise AssetError(f"router manifest {path} is not a JSON object")
    return manifest


def _check_manifest(manifest: dict[str, Any], path: Path, embedder_sha256: str) -> None:
    if manifest.get("format_version") != FORMAT_VERSION:
        raise AssetError(
            f"{path} has format_version {manifest.get('format_version')!r}; this "
            f"smartllm reads format_version {FORMAT_VERSION}: upgrade smartllm"
        )
    models = manifest.get("models")
    if (
        not isinstance(models, list)
        or not models
        or not all(isinstance(m, str) for m in models)
        or len(set(models)) != len(models)
    ):
        raise AssetError(f"{path} has an invalid 'models' list: {models!r:.200}")

    features = manifest.get("features")
    if features not in SUPPORTED_FEATURES:
        raise AssetError(
            f"{path} uses features {features!r}; this smartllm computes "
            f"{sorted(SUPPORTED_FEATURES)}: upgrade smartllm or retrain the router"
        )
    expected_dim = SUPPORTED_FEATURES[features]
    if manifest.get("input_dim") != expected_dim:
        raise AssetError(
            f"{path} has input_dim {manifest.get('input_dim')!r} but features "
            f"{features!r} are {expected_dim} wide: the router is damaged"
        )
    if manifest.get("embedder_sha256") != embedder_sha256:
        raise AssetError(
            f"{path} was trained on embedder {manifest.get('embedder_sha256')!r} but "
            f"this smartllm embeds with {embedder_sha256}: retrain the router with "
            "this smartllm version"
        )


def _create_session(path: Path, threads: int) -> onnxruntime.InferenceSession:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    try:
        return onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises several private types
        raise AssetError(
            f"cannot load the router ONNX file {path}: {exc}; reinstall the router, "
            "or smartllm for the bundled one"
        ) from exc


def _check_session(
    session: onnxruntime.InferenceSession, path: Path, input_dim: int, n_models: int
) -> None:
    inputs = {i.name: i.shape for i in session.get_inputs()}
    outputs = {o.name for o in session.get_outputs()}
    if set(inputs) != {"embedding", "lam"}:
        raise AssetError(f"{path} has inputs {sorted(inputs)}, expected embedding and lam")
    missing = set(OUTPUT_NAMES) - outputs
    if missing:
        raise AssetError(f"{path} lacks the outputs {sorted(missing)}")
    width = inputs["embedding"][-1]
    if isinstance(width, int) and width != input_dim:
        raise AssetError(f"{path} takes {width} features but router.json sets input_dim {input_dim}")

    probe = np.zeros((1, input_dim), dtype=np.float32)
    try:
        results = session.run(
            list(OUTPUT_NAMES), {"embedding": probe, "lam": np.zeros(1, np.float32)}
        )
    except Exception as exc:  # onnxruntime raises several private types
        raise AssetError(f"router {path} failed on a probe input: {exc}") from exc
    for name, result in zip(OUTPUT_NAMES, results, strict=True):
        if np.shape(result) != (1, n_models):
            raise AssetError(
                f"router {path} output {name} has shape {np.shape(result)}, "
                f"expected (1, {n_models})"
            )


class RouterSource:
    """The router to use for the next request, reloaded when a new one is installed.

    With ``directory`` set, that router is loaded once and errors raise.
    Otherwise each call to :meth:`current` stats ``routers/CURRENT`` under the
    data directory. When the file changed, the router it names is loaded. An
    installed router that fails validation is skipped with one WARNING per
    version, and the bundled router serves instead.
    """

    def __init__(self, embedder_sha256: str, directory: Path | None = None) -> None:
        self._embedder_sha256 = embedder_sha256
        self._directory = directory
        self._lock = threading.Lock()
        self._pointer_key: tuple[int, int, int] | None = None
        self._pointer_checked = False
        self._installed: Router | None = None
        self._base: Router | None = None
        self._rejected: set[str] = set()

    def current(self) -> Router:
        """Return the router that should serve the next request."""
        if self._directory is not None:
            return self._base_router()

        pointer = data_dir() / "routers" / POINTER_NAME
        try:
            stat = os.stat(pointer)
            key: tuple[int, int, int] | None = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        except OSError:
            key = None

        if not self._pointer_checked or key != self._pointer_key:
            with self._lock:
                if not self._pointer_checked or key != self._pointer_key:
                    self._installed = self._load_installed(pointer) if key else None
                    self._pointer_key = key
                    self._pointer_checked = True
        return self._installed or self._base_router()

    @property
    def installed_router(self) -> Router | None:
        """The installed router in use, None while the bundled or explicit one serves."""
        return self._installed

    def _base_router(self) -> Router:
        if self._base is None:
            with self._lock:
                if self._base is None:
                    directory = self._directory or bundled_router_dir()
                    self._base = load_router(directory, self._embedder_sha256)
        return self._base

    def _load_installed(self, pointer: Path) -> Router | None:
        try:
            version = pointer.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            logger.warning("cannot read %s (%s); using the bundled router", pointer, exc)
            return None
        if not version or version in {".", ".."} or "/" in version or "\\" in version:
            logger.warning(
                "%s names %r, which is not a router version; using the bundled router",
                pointer,
                version,
            )
            return None
        if version in self._rejected:
            return None

        try:
            router = load_router(pointer.parent / version, self._embedder_sha256, version)
        except AssetError as exc:
            self._rejected.add(version)
            logger.warning("installed router %s rejected, using the bundled router: %s", version, exc)
            return None
        logger.info("switched to installed router %s", version)
        return router
