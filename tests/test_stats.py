"""ecasweep.stats.summary agrees with scipy.stats on the same arrays and handles the degenerate cases."""

import math
import warnings

import numpy as np
import pytest
from scipy import stats as sst

from ecasweep.stats import summary as stats

A = [91.2, 91.5, 91.4, 90.9]
B = [90.8, 91.1, 91.3, 90.7]


def test_summarize_matches_scipy():
    s = stats.summarize_arm(A)
    assert s.n == 4
    assert s.mean == pytest.approx(np.mean(A))
    assert s.std == pytest.approx(np.std(A, ddof=1))
    ci = sst.ttest_1samp(A, 0).confidence_interval(0.95)
    assert (s.ci_low, s.ci_high) == pytest.approx((ci.low, ci.high))


def test_summarize_small_and_bootstrap():
    assert stats.summarize_arm([]).mean is None
    one = stats.summarize_arm([3.0])
    assert (one.n, one.mean, one.std, one.ci_low, one.ci_high) == (1, 3.0, None, None, None)
    s = stats.summarize_arm(A, bootstrap=True, n_resamples=999)
    ref = sst.bootstrap((np.array(A),), np.mean, n_resamples=999, rng=np.random.default_rng(0))
    assert (s.boot_low, s.boot_high) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))


def test_paired_t_matches_scipy():
    a, b = dict(enumerate(A)), dict(enumerate(B))
    c = stats.compare(a, b)
    ref = sst.ttest_rel(A, B)
    ci = ref.confidence_interval(0.95)
    assert (c.test, c.paired, c.n) == ("paired t", True, 4)
    assert c.delta == pytest.approx(np.mean(np.subtract(A, B)))
    assert c.p_value == pytest.approx(ref.pvalue)
    assert (c.ci_low, c.ci_high) == pytest.approx((ci.low, ci.high))
    d = np.subtract(A, B)
    expected = sst.t.cdf(d.mean() / (d.std(ddof=1) * math.sqrt(1 + 1 / 4)), 3)
    assert c.p_a_beats_b == pytest.approx(expected)
    assert 0.5 < c.p_a_beats_b < 1


def test_wilcoxon_matches_scipy():
    c = stats.compare(dict(enumerate(A)), dict(enumerate(B)), test="wilcoxon")
    assert c.test == "wilcoxon signed-rank"
    assert c.p_value == pytest.approx(sst.wilcoxon(A, B).pvalue)


def test_welch_fallback_when_seeds_not_shared():
    a = {0: 91.2, 1: 91.5, 2: 91.4}
    b = {3: 90.8, 4: 91.1, 5: 91.3}
    c = stats.compare(a, b)
    ref = sst.ttest_ind(list(a.values()), list(b.values()), equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert (c.test, c.paired, c.n) == ("Welch t", False, 0)
    assert c.p_value == pytest.approx(ref.pvalue)
    assert (c.ci_low, c.ci_high) == pytest.approx((ci.low, ci.high))
    assert c.delta == pytest.approx(np.mean(list(a.values())) - np.mean(list(b.values())))
    # one shared seed is not enough to pair
    assert stats.compare({0: 1.0, 1: 2.0, 2: 3.0}, {0: 1.5, 7: 2.5, 8: 2.0}).test == "Welch t"


def test_untestable_is_none_not_nan():
    c = stats.compare({0: 1.0}, {1: 2.0, 2: 3.0})
    assert c.delta == pytest.approx(-1.5) and c.p_value is None and c.ci_low is None
    assert stats.compare({}, {0: 1.0}).delta is None


def test_zero_variance_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same = stats.compare({0: 1.0, 1: 2.0, 2: 3.0}, {0: 1.0, 1: 2.0, 2: 3.0})
        assert (same.p_value, same.delta, same.ci_low, same.ci_high, same.p_a_beats_b) == (1.0, 0.0, 0.0, 0.0, 0.5)
        assert stats.compare({0: 1.0, 1: 2.0}, {0: 1.0, 1: 2.0}, test="wilcoxon").p_value == 1.0
        shifted = stats.compare({0: 2.0, 1: 3.0}, {0: 1.0, 1: 2.0})
        assert (shifted.p_value, shifted.delta, shifted.p_a_beats_b) == (0.0, 1.0, 1.0)
        flat = stats.summarize_arm([5.0, 5.0, 5.0], bootstrap=True)
        assert (flat.std, flat.ci_low, flat.ci_high, flat.boot_low) == (0.0, 5.0, 5.0, 5.0)
        welch = stats.compare({0: 1.0, 1: 1.0}, {2: 1.0, 3: 1.0})
        assert (welch.test, welch.p_value) == ("Welch t", 1.0)


def test_holm_hand_computed():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, None, 0.01]) == [pytest.approx(0.5), None, pytest.approx(0.02)]
    assert stats.holm([0.6, 0.7]) == [1.0, 1.0] or stats.holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])
    assert stats.holm([]) == []


def test_power_monotone_and_seeds_needed():
    powers = [stats.paired_power(n, 0.3, 0.5) for n in range(2, 40)]
    assert all(x <= y for x, y in zip(powers, powers[1:]))
    n = stats.seeds_needed(0.3, 0.5)
    assert stats.paired_power(n, 0.3, 0.5) >= 0.8 > stats.paired_power(n - 1, 0.3, 0.5)
    assert stats.seeds_needed(0.6, 0.5) < n  # a larger difference needs fewer seeds
    assert stats.seeds_needed(0.3, 1.0) > n  # more spread needs more
    assert stats.seeds_needed(0.0, 0.5) is None
    assert stats.seeds_needed(0.3, None) is None


def test_best_and_tied():
    assert stats.best_arm({"a": 1.0, "b": 2.0, "c": None}) == "b"
    assert stats.best_arm({"a": 1.0, "b": 2.0}, lower_is_better=True) == "a"
    assert stats.best_arm({"a": None}) is None
    assert stats.tied_with_best({"a": 0.049, "b": 0.05, "c": None}) == {"a": False, "b": True, "c": True}
