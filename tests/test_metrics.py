import numpy as np
import pytest
from sklearn.metrics import f1_score

from thne.evaluate.metrics import METRIC_KEYS, regression_metrics


def test_keys_and_perfect_prediction():
    t = np.array([-3.0, -1.2, 0.0, 0.4, 2.6])
    m = regression_metrics(t, t)
    assert tuple(m) == METRIC_KEYS
    assert m["mae"] == 0.0 and m["corr"] == pytest.approx(1.0)
    assert all(m[k] == 1.0 for k in METRIC_KEYS if k not in ("mae", "corr"))


def test_ties_at_half_round_to_even():
    # 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> -0, -1.5 -> -2: numpy's banker's rounding.
    pred = np.array([0.5, 1.5, 2.5, -0.5, -1.5])
    truth = np.array([0.0, 2.0, 2.0, 0.0, -2.0])
    assert regression_metrics(pred, truth)["acc7"] == 1.0
    # Rounding half away from zero would give 1, 2, 3, -1, -2: only 2 of 5 right.
    assert regression_metrics(pred, np.array([1.0, 2.0, 3.0, -1.0, -2.0]))["acc7"] == pytest.approx(
        2 / 5
    )


def test_acc5_clips_to_two():
    pred = np.array([2.9, -2.7, 3.0])
    truth = np.array([2.0, -3.0, 2.4])
    m = regression_metrics(pred, truth)
    assert m["acc5"] == 1.0  # everything clips to +-2
    assert m["acc7"] == pytest.approx(1 / 3)  # 3 vs 2, -3 vs -3, 3 vs 2


def test_mae_uses_unclipped_values():
    m = regression_metrics([5.0, -4.0], [3.0, -3.0])
    assert m["mae"] == pytest.approx(1.5)


def test_zero_labels_count_as_non_negative_and_drop_from_non0():
    truth = np.array([0.0, 0.0, 1.0, -1.0])
    pred = np.array([-0.2, 0.3, 0.8, 0.5])
    m = regression_metrics(pred, truth)
    # has0: classes t>=0 / p>=0 over all four: [T,T,T,F] vs [F,T,T,T] -> 2/4
    assert m["acc2_has0"] == pytest.approx(0.5)
    # non0 keeps the last two: [T,F] vs [T,T] -> 1/2
    assert m["acc2_non0"] == pytest.approx(0.5)
    assert m["f1_non0"] == pytest.approx(f1_score([True, False], [True, True], average="weighted"))


def test_prediction_of_exactly_zero():
    truth = np.array([1.0, -1.0, 2.0])
    pred = np.array([0.0, 0.0, 0.0 + 1.0])
    m = regression_metrics(pred, truth)
    # has0: p=0 is non-negative, so right for t=1, wrong for t=-1.
    assert m["acc2_has0"] == pytest.approx(2 / 3)
    # non0: p=0 is not positive, so wrong for t=1, right for t=-1.
    assert m["acc2_non0"] == pytest.approx(2 / 3)
    assert m["f1_has0"] == pytest.approx(
        f1_score([True, False, True], [True, True, True], average="weighted", zero_division=0)
    )


def test_constant_prediction_gives_zero_correlation():
    m = regression_metrics(np.full(4, 0.7), [1.0, -2.0, 0.5, 3.0])
    assert m["corr"] == 0.0
    assert np.isfinite(list(m.values())).all()


def test_correlation_matches_numpy():
    rng = np.random.default_rng(0)
    t = rng.uniform(-3, 3, 50)
    p = t + rng.normal(0, 1, 50)
    assert regression_metrics(p, t)["corr"] == pytest.approx(np.corrcoef(p, t)[0, 1])


def test_bad_input():
    with pytest.raises(ValueError, match="differ in length"):
        regression_metrics([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        regression_metrics([np.nan], [1.0])
    with pytest.raises(ValueError, match="every label is 0"):
        regression_metrics([1.0, 2.0], [0.0, 0.0])
