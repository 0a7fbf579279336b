"""core/profile.py on synthetic data: calibrated thresholds hold their false-alarm rate on
reference-like windows, a shifted window exceeds them, constant features break nothing."""

from __future__ import annotations

import numpy as np

from pipelines.core import profile
from pipelines.serving.reference import anomaly_scores

RATE = 0.05
WINDOW = 100


def _data(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Ten features: eight Gaussian, two constant (like digits' blank corner pixels); a class
    that depends on the first feature."""
    rng = np.random.default_rng(seed)
    x = np.zeros((rows, 10))
    x[:, :8] = rng.normal(5.0, 2.0, size=(rows, 8))
    predicted = np.clip((x[:, 0] - 1.0) // 2.0, 0, 3).astype(np.int64)
    return x, predicted


def _calibrate(
    seed: int = 0,
) -> tuple[profile.FeatureProfile, np.ndarray, profile.DriftThresholds]:
    x, predicted = _data(4000, seed=1)
    ref = profile.feature_profile(x, stddev_floor=0.01)
    ratio = profile.class_ratio(predicted, 4)
    held_x, held_pred = _data(2000, seed=2)
    thresholds = profile.drift_thresholds(
        held_x, held_pred, ref, ratio, window=WINDOW, windows=2000, false_alarm_rate=RATE, seed=seed
    )
    return ref, ratio, thresholds


def _alarms(
    x: np.ndarray,
    predicted: np.ndarray,
    ref: profile.FeatureProfile,
    ratio: np.ndarray,
    t: profile.DriftThresholds,
) -> tuple[float, float]:
    """The share of windows from (x, predicted) whose drifted fraction, and whose PSI, alarm."""
    idx = np.arange(x.shape[0] // WINDOW * WINDOW).reshape(-1, WINDOW)
    effects, psi = profile.window_statistics(x, predicted, ref, ratio, idx)
    drifted = np.mean(effects > t.feature_effect, axis=1)
    return float(np.mean(drifted > t.drifted_fraction)), float(np.mean(psi > t.prediction_psi))


def test_the_feature_profile_floors_the_stddev_of_constant_features() -> None:
    x, _ = _data(500, seed=0)
    ref = profile.feature_profile(x, stddev_floor=0.01)
    assert ref.stddev[8] == ref.stddev[9] == 0.01
    assert np.allclose(ref.mean[:8], 5.0, atol=0.3)
    assert ref.bins.shape == (10, profile.BINS + 1)
    assert np.all(np.diff(ref.bins, axis=1) >= 0)


def test_calibration_is_deterministic_for_a_seed() -> None:
    assert _calibrate(seed=3)[2] == _calibrate(seed=3)[2]
    assert _calibrate(seed=3)[2] != _calibrate(seed=4)[2]


def test_reference_like_windows_alarm_at_about_the_stated_rate() -> None:
    ref, ratio, t = _calibrate()
    fresh_x, fresh_pred = _data(100 * WINDOW, seed=7)  # 100 windows never seen in calibration
    drift_rate, psi_rate = _alarms(fresh_x, fresh_pred, ref, ratio, t)
    assert drift_rate <= 3 * RATE
    assert psi_rate <= 3 * RATE


def test_a_shifted_window_exceeds_the_thresholds() -> None:
    ref, ratio, t = _calibrate()
    x, _ = _data(10 * WINDOW, seed=8)
    x[:, :4] += 1.5  # four of ten features move by 0.75 standard deviations
    predicted = np.full(x.shape[0], 3, dtype=np.int64)  # and the model answers one class
    assert _alarms(x, predicted, ref, ratio, t) == (1.0, 1.0)


def test_psi_is_zero_on_the_reference_and_finite_on_an_unseen_class() -> None:
    p = np.array([0.5, 0.5, 0.0])
    assert profile.psi(p, p) == 0.0
    assert np.isfinite(profile.psi(np.array([0.0, 0.5, 0.5]), p))


def test_constant_features_leave_the_covariance_invertible_and_the_threshold_calibrated() -> None:
    x, _ = _data(2000, seed=1)
    gaussian = profile.fit_gaussian(x)
    assert np.all(np.isfinite(gaussian.precision))
    assert 0.0 < gaussian.shrinkage < 1.0
    held, _ = _data(4000, seed=2)
    eps = profile.anomaly_threshold(gaussian, held, false_alarm_rate=0.01)
    assert abs(eps.held_out_rate - 0.01) < 0.005
    fresh, _ = _data(4000, seed=3)
    fresh_rate = np.mean(anomaly_scores(fresh, gaussian.center, gaussian.precision) > eps.threshold)
    assert fresh_rate < 0.03
    outlier = np.full((1, 10), 5.0)
    outlier[0, 8] = 3.0  # a pixel that is always blank in the reference is lit
    assert anomaly_scores(outlier, gaussian.center, gaussian.precision)[0] > eps.threshold
