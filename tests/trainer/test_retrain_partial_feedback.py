"""Retraining on a log where only some requests have feedback."""

from __future__ import annotations

import numpy as np

from smartllm._store import LOG_FILE_NAME
from trainer._retrain_candidates import FitSettings
from trainer._retrain_synth import write_synthetic_log
from trainer.retrain import RetrainOptions, retrain


def test_rows_without_feedback_are_left_out(tmp_path, monkeypatch):
    """Rows with no feedback are counted as excluded and never reach the fit."""
    monkeypatch.setenv("SMARTLLM_HOME", str(tmp_path))
    write_synthetic_log(tmp_path / LOG_FILE_NAME, 3000, n_models=4, feedback_share=0.6)
    options = RetrainOptions(
        n_boot=100, plot=None, dry_run=True, fit=FitSettings(epochs=5, random_state=0)
    )

    report = retrain(options)

    excluded = report["excluded"]["no_feedback"]
    assert 900 < excluded < 1500
    assert 0 < report["rows_used"] <= 3000 - excluded
    assert np.isfinite(report["differences"]["constant"]["mean_difference"])
