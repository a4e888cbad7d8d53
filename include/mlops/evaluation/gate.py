"""The evaluation gate: a pure function of (candidate metrics, champion metrics, policy).

Checks, in order:

1. ``floor``: the candidate's PR-AUC is at least ``min_pr_auc`` (always applies);
2. ``non_regression``: PR-AUC is at least the champion's minus ``max_regression``;
3. ``slice:<col>=<value>``: per slice present for both models, PR-AUC is at least the
   champion's minus ``slice_max_regression``.

With no champion yet (the first model), 2 and 3 are recorded as passed with the reason
"no champion yet", so the verdict says explicitly why nothing was compared.

Fail closed: a missing or non-finite metric (NaN, inf) is a failed check that says which
model and which metric, never an exception and never a silent pass. Slices that could not be
compared (scored for one model only, or skipped by the evaluation for too few positives) and
"no comparable slices" are notes in the verdict.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class GatePolicy:
    metric: str = "pr_auc"
    min_pr_auc: float = 0.40
    max_regression: float = 0.01
    slice_max_regression: float | None = 0.05

    def __post_init__(self) -> None:
        for name in ("min_pr_auc", "max_regression"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"gate policy {name} must be within [0, 1], got {value}")
        if self.slice_max_regression is not None and not 0.0 <= self.slice_max_regression <= 1.0:
            raise ValueError(f"gate policy slice_max_regression must be within [0, 1], got {self.slice_max_regression}")


@dataclass
class Check:
    name: str
    value: float | None
    threshold: float | None
    passed: bool
    detail: str


@dataclass
class Verdict:
    passed: bool
    checks: list[Check] = field(default_factory=list)
    champion_version: str | None = None
    policy: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        lines = [f"{'PASS' if c.passed else 'FAIL'} {c.name}: {c.detail}" for c in self.checks]
        return lines + [f"NOTE {note}" for note in self.notes]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["reasons"] = self.reasons
        return out


def _metric(block: dict[str, Any] | None, metric: str) -> tuple[float | None, str | None]:
    """The metric's value, or None and why it cannot be used (missing, not a number, not finite)."""
    try:
        value = block["metrics"][metric]  # type: ignore[index]
    except (KeyError, TypeError):
        return None, f"has no metric {metric!r}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, f"metric {metric!r} is not a number: {value!r}"
    if not math.isfinite(value):
        return None, f"metric {metric!r} is {value}"
    return float(value), None


def decide(candidate: dict[str, Any], champion: dict[str, Any] | None, policy: GatePolicy) -> Verdict:
    """Verdict for a candidate; `champion` is None when no model holds the champion alias."""
    metric = policy.metric
    cand, cand_problem = _metric(candidate, metric)
    if cand is None:
        floor = Check("floor", None, policy.min_pr_auc, False, f"candidate {cand_problem}: cannot be promoted")
    else:
        floor = Check(
            name="floor",
            value=cand,
            threshold=policy.min_pr_auc,
            passed=cand >= policy.min_pr_auc,
            detail=f"candidate {metric} {cand:.4f} {'>=' if cand >= policy.min_pr_auc else '<'} floor {policy.min_pr_auc:.4f}",
        )
    checks = [floor]
    if champion is None:
        checks.append(
            Check(
                name="non_regression",
                value=cand,
                threshold=None,
                passed=True,
                detail="no champion yet: first model, nothing to regress against",
            )
        )
        return Verdict(passed=all(c.passed for c in checks), checks=checks, policy=asdict(policy))

    version = champion.get("version")
    champ, champ_problem = _metric(champion, metric)
    if champ is None or cand is None:
        checks.append(
            Check(
                name="non_regression",
                value=cand,
                threshold=None,
                passed=False,
                detail=(
                    f"champion v{version} {champ_problem}: nothing to compare against; fix its evaluation or "
                    "roll back the champion"
                    if champ is None
                    else f"candidate {cand_problem}"
                ),
            )
        )
    else:
        threshold = champ - policy.max_regression
        checks.append(
            Check(
                name="non_regression",
                value=cand,
                threshold=threshold,
                passed=cand >= threshold,
                detail=(
                    f"candidate {metric} {cand:.4f} vs champion v{version} {champ:.4f} "
                    f"(tolerance {policy.max_regression:.4f}, needs >= {threshold:.4f})"
                ),
            )
        )
    notes: list[str] = []
    if policy.slice_max_regression is not None:
        checks += _slice_checks(candidate, champion, policy, notes)
    return Verdict(
        passed=all(c.passed for c in checks),
        checks=checks,
        champion_version=str(version) if version is not None else None,
        policy=asdict(policy),
        notes=notes,
    )


def _slice_checks(
    candidate: dict[str, Any], champion: dict[str, Any], policy: GatePolicy, notes: list[str]
) -> list[Check]:
    metric, limit_drop = policy.metric, policy.slice_max_regression
    assert limit_drop is not None
    cand_slices = candidate.get("slices") or {}
    champ_slices = champion.get("slices") or {}
    checks = []
    for key in sorted(set(cand_slices) & set(champ_slices)):
        c_val, c_problem = _metric({"metrics": cand_slices[key]}, metric)
        h_val, h_problem = _metric({"metrics": champ_slices[key]}, metric)
        if c_val is None or h_val is None:
            who = f"candidate {c_problem}" if c_val is None else f"champion {h_problem}"
            checks.append(Check(f"slice:{key}", c_val, None, False, f"{who}: cannot compare this slice"))
            continue
        limit = h_val - limit_drop
        checks.append(
            Check(
                name=f"slice:{key}",
                value=c_val,
                threshold=limit,
                passed=c_val >= limit,
                detail=f"{metric} {c_val:.4f} vs champion {h_val:.4f} (needs >= {limit:.4f})",
            )
        )
    for key in sorted(set(cand_slices) ^ set(champ_slices)):
        side = "candidate" if key in cand_slices else "champion"
        notes.append(f"slice {key} scored for the {side} only: not compared")
    skipped = {**(champion.get("slices_skipped") or {}), **(candidate.get("slices_skipped") or {})}
    for key, positives in sorted(skipped.items()):
        notes.append(f"slice {key} skipped: {positives} positives in the holdout, too few to score")
    if not checks:
        notes.append("no comparable slices: only the overall metric was compared")
    return checks


NOTE_LIMIT = 1000  # Airflow's DAG run note column


def run_note(verdict: dict[str, Any], decision: dict[str, Any] | None = None) -> str:
    """The DAG run's note (markdown, at most NOTE_LIMIT characters): the promotion decision if
    made, then the gate's failed checks first."""
    reasons = list(verdict.get("reasons", []))
    champion = verdict.get("champion_version")
    against = f"champion v{champion}" if champion else "no champion"
    if verdict.get("holdout_partitions"):
        days = verdict["holdout_partitions"]
        against += f", held-out rows of {days[0]}..{days[-1]}" if len(days) > 1 else f", held-out rows of {days[0]}"
    if verdict.get("passed"):
        head = f"**Gate passed** (against {against}): the candidate may become champion."
    else:
        head = f"**Gate failed** (against {against}): the candidate was not promoted."
    outcome = (decision or {}).get("decision")
    if outcome == "promoted":
        head = f"**Promoted**: champion is now v{decision['version']}.\n\n{head}"
    elif outcome and outcome != "rejected":  # a rejection's reason is the gate's failure, already said
        head = f"**Not promoted ({outcome})**: {decision['reason'][:300]}\n\n{head}"
    ordered = [r for r in reasons if r.startswith("FAIL")] + [r for r in reasons if not r.startswith("FAIL")]
    note = head
    for line in ordered:
        entry = f"\n- {line}"
        if len(note) + len(entry) > NOTE_LIMIT - 2:
            note += "\n- …"
            break
        note += entry
    return note
