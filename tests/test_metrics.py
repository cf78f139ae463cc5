import numpy as np
import pytest

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
    # Weighted F1 by hand. non0: truth [T, F], pred [T, T]. Class T: precision 1/2, recall 1,
    # F1 2/3, support 1; class F: never predicted, F1 0, support 1. Weighted: 1/3.
    assert m["f1_non0"] == pytest.approx(1 / 3)
    # has0: truth [T, T, T, F], pred [F, T, T, T]. Class T: precision 2/3, recall 2/3, F1 2/3,
    # support 3; class F: precision 0, F1 0, support 1. Weighted: 3/4 * 2/3 = 1/2.
    assert m["f1_has0"] == pytest.approx(0.5)


def test_prediction_of_exactly_zero():
    truth = np.array([1.0, -1.0, 2.0])
    pred = np.array([0.0, 0.0, 0.0 + 1.0])
    m = regression_metrics(pred, truth)
    # has0: p=0 is non-negative, so right for t=1, wrong for t=-1.
    assert m["acc2_has0"] == pytest.approx(2 / 3)
    # non0: p=0 is not positive, so wrong for t=1, right for t=-1.
    assert m["acc2_non0"] == pytest.approx(2 / 3)
    # has0: truth [T, F, T], pred [T, T, T]. Class T: precision 2/3, recall 1, F1 4/5,
    # support 2; class F: never predicted, F1 0 (zero_division=0), support 1. Weighted: 8/15.
    assert m["f1_has0"] == pytest.approx(8 / 15)
    # non0: truth [T, F, T], pred [F, F, T]. T: precision 1, recall 1/2, F1 2/3, support 2;
    # F: precision 1/2, recall 1, F1 2/3, support 1. Weighted: 2/3.
    assert m["f1_non0"] == pytest.approx(2 / 3)


def test_constant_prediction_gives_zero_correlation():
    m = regression_metrics(np.full(4, 0.7), [1.0, -2.0, 0.5, 3.0])
    assert m["corr"] == 0.0
    assert np.isfinite(list(m.values())).all()


def test_correlation_matches_numpy():
    rng = np.random.default_rng(0)
    t = rng.uniform(-3, 3, 50)
    p = t + rng.normal(0, 1, 50)
    assert regression_metrics(p, t)["corr"] == pytest.approx(np.corrcoef(p, t)[0, 1])


def test_constant_labels():
    """All labels equal: correlation is 0, not NaN, and the accuracies are still counted."""
    m = regression_metrics([1.2, 0.6, -0.4, 2.0], np.full(4, 1.0))
    assert m["corr"] == 0.0
    assert m["mae"] == pytest.approx((0.2 + 0.4 + 1.4 + 1.0) / 4)
    assert m["acc7"] == pytest.approx(2 / 4)  # rounds to 1, 1, -0, 2
    assert m["acc2_has0"] == pytest.approx(3 / 4) and m["acc2_non0"] == pytest.approx(3 / 4)
    # One class only in the truth: weighted F1 is that class's F1 = 2 * 3 / (3 + 4) = 6/7.
    assert m["f1_non0"] == pytest.approx(6 / 7) and m["f1_has0"] == pytest.approx(6 / 7)


def test_all_zero_validation_labels_select_on_mae():
    """Validation labels all 0: the non0 metrics are undefined, so model selection falls back
    to the MAE alone instead of failing."""
    import pandas as pd

    from thne.train.loop import selection_metrics

    pred = pd.DataFrame({"prediction": [0.5, -1.0, 0.25], "label": [0.0, 0.0, 0.0]})
    assert selection_metrics(pred) == {"mae": pytest.approx(0.5833333)}
    with pytest.raises(ValueError, match="every label is 0"):
        regression_metrics(pred["prediction"], pred["label"])


def test_empty_input_is_a_clear_error():
    with pytest.raises(ValueError, match="zero clips"):
        regression_metrics([], [])
    with pytest.raises(ValueError, match="1-D"):
        regression_metrics([[1.0, 2.0]], [[1.0, 2.0]])


def test_bad_input():
    with pytest.raises(ValueError, match="differ in length"):
        regression_metrics([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        regression_metrics([np.nan], [1.0])
    with pytest.raises(ValueError, match="every label is 0"):
        regression_metrics([1.0, 2.0], [0.0, 0.0])


def test_f1_is_sklearns_weighted_f1():
    """The F1 columns equal scikit-learn's f1_score(average="weighted", zero_division=0), which
    the reference evaluation code calls, on random splits and on one-class ones."""
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    cases = [rng.normal(size=(2, n)) for n in (1, 2, 5, 40, 333)]
    cases += [np.array([[1.0, 2.0, 0.5], [0.1, 0.2, 0.3]])]  # one class on both sides
    cases += [np.array([[1.0, 2.0, 0.5], [-0.1, -0.2, -0.3]])]  # the other class predicted
    cases += [np.array([[-1.0, 2.0, 0.0, 0.0], [0.1, -0.2, 0.0, 1.0]])]
    for truth, pred in cases:
        m = regression_metrics(pred, truth)
        has0 = f1_score(truth >= 0, pred >= 0, average="weighted", zero_division=0)
        nz = truth != 0
        non0 = f1_score(truth[nz] > 0, pred[nz] > 0, average="weighted", zero_division=0)
        assert m["f1_has0"] == pytest.approx(has0, abs=1e-12)
        assert m["f1_non0"] == pytest.approx(non0, abs=1e-12)
