import pytest

from include.mlops.evaluation.gate import GatePolicy, decide

pytestmark = pytest.mark.unit


def block(pr_auc, slices=None, version=None):
    out = {"metrics": {"pr_auc": pr_auc}, "slices": {k: {"pr_auc": v} for k, v in (slices or {}).items()}}
    if version is not None:
        out["version"] = version
    return out


POLICY = GatePolicy(min_pr_auc=0.4, max_regression=0.01, slice_max_regression=0.05)


def checks(verdict):
    return {c.name: c for c in verdict.checks}


def test_no_champion_passes_on_floor_and_says_why():
    v = decide(block(0.55), None, POLICY)
    assert v.passed is True
    c = checks(v)
    assert c["floor"].passed and c["floor"].threshold == 0.4
    assert c["non_regression"].passed and "no champion yet" in c["non_regression"].detail
    assert v.champion_version is None


def test_no_champion_below_floor_fails():
    v = decide(block(0.39), None, POLICY)
    assert v.passed is False
    assert checks(v)["floor"].passed is False
    assert any(r.startswith("FAIL floor") for r in v.reasons)


def test_floor_is_inclusive():
    assert decide(block(0.4), None, POLICY).passed is True


def test_regression_within_tolerance_passes():
    v = decide(block(0.545), block(0.55, version="3"), POLICY)
    assert v.passed is True
    c = checks(v)["non_regression"]
    assert c.threshold == pytest.approx(0.54)
    assert v.champion_version == "3"


def test_regression_beyond_tolerance_fails_with_values():
    v = decide(block(0.52), block(0.55, version="3"), POLICY)
    assert v.passed is False
    c = checks(v)["non_regression"]
    assert c.passed is False and c.value == 0.52
    assert "v3" in c.detail and "0.5500" in c.detail


def test_floor_fails_even_when_better_than_champion():
    v = decide(block(0.35), block(0.30, version="1"), POLICY)
    assert v.passed is False
    assert checks(v)["non_regression"].passed is True
    assert checks(v)["floor"].passed is False


def test_slice_regression_fails_only_that_slice():
    cand = block(0.56, {"channel=atm": 0.30, "channel=chip": 0.60})
    champ = block(0.55, {"channel=atm": 0.40, "channel=chip": 0.58, "channel=swipe": 0.5}, version="2")
    v = decide(cand, champ, POLICY)
    c = checks(v)
    assert v.passed is False
    assert c["slice:channel=atm"].passed is False
    assert c["slice:channel=chip"].passed is True
    assert "slice:channel=swipe" not in c  # only slices both models were scored on


def test_slices_disabled():
    cand = block(0.56, {"channel=atm": 0.10})
    champ = block(0.55, {"channel=atm": 0.40}, version="2")
    policy = GatePolicy(min_pr_auc=0.4, max_regression=0.01, slice_max_regression=None)
    assert decide(cand, champ, policy).passed is True


def test_missing_metric_is_a_failed_check_with_a_reason():
    v = decide({"metrics": {}}, None, POLICY)
    assert v.passed is False and "candidate has no metric 'pr_auc'" in checks(v)["floor"].detail
    v = decide(block(0.5), {"metrics": {"roc_auc": 0.9}, "version": "4"}, POLICY)
    assert v.passed is False
    assert "champion v4 has no metric 'pr_auc'" in checks(v)["non_regression"].detail


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "0.5", None, True])
def test_non_finite_or_non_numeric_champion_metric_fails_closed(bad):
    v = decide(block(0.9), block(bad, version="3"), POLICY)
    assert v.passed is False
    detail = checks(v)["non_regression"].detail
    assert detail.startswith("champion v3 metric 'pr_auc'") or detail.startswith("champion v3 has no metric")
    assert "roll back" in detail


def test_nan_candidate_metric_fails_the_floor_and_the_comparison():
    v = decide(block(float("nan")), block(0.5, version="1"), POLICY)
    assert v.passed is False
    assert checks(v)["floor"].passed is False and "is nan" in checks(v)["floor"].detail
    assert checks(v)["non_regression"].passed is False


def test_nan_slice_metric_fails_that_slice():
    v = decide(block(0.56, {"a=b": float("nan")}), block(0.55, {"a=b": 0.5}, version="2"), POLICY)
    assert v.passed is False and "cannot compare this slice" in checks(v)["slice:a=b"].detail


def test_uncomparable_and_skipped_slices_are_noted():
    cand = {**block(0.56, {"a=x": 0.5}), "slices_skipped": {"a=y": 7}}
    champ = block(0.55, {"a=z": 0.5}, version="2")
    v = decide(cand, champ, POLICY)
    assert v.passed is True  # notes never fail the gate; only compared slices do
    assert "NOTE slice a=x scored for the candidate only: not compared" in v.reasons
    assert "NOTE slice a=z scored for the champion only: not compared" in v.reasons
    assert "NOTE slice a=y skipped: 7 positives in the holdout, too few to score" in v.reasons
    assert "NOTE no comparable slices: only the overall metric was compared" in v.reasons


@pytest.mark.parametrize("field", ["min_pr_auc", "max_regression", "slice_max_regression"])
def test_policy_bounds(field):
    with pytest.raises(ValueError, match=field):
        GatePolicy(**{field: 1.5})


def test_verdict_is_json_serialisable():
    import json

    v = decide(block(0.5, {"a=b": 0.4}), block(0.49, {"a=b": 0.41}, version="1"), POLICY).to_dict()
    again = json.loads(json.dumps(v))
    assert again["passed"] is True
    assert again["reasons"][0].startswith("PASS floor")
    assert {c["name"] for c in again["checks"]} == {"floor", "non_regression", "slice:a=b"}
