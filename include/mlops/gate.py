"""The evaluation gate: a pure function of (candidate metrics, champion metrics, policy).

Checks, in order:

1. ``floor``: the candidate's PR-AUC is at least ``min_pr_auc`` (always applies);
2. ``non_regression``: PR-AUC is at least the champion's minus ``max_regression``;
3. ``slice:<col>=<value>``: per slice present for both models, PR-AUC is at least the
   champion's minus ``slice_max_regression``.

With no champion yet (the first model), 2 and 3 are recorded as passed with the reason
"no champion yet", so the verdict says explicitly why nothing was compared.
"""

from __future__ import annotations

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

    @property
    def reasons(self) -> list[str]:
        return [f"{'PASS' if c.passed else 'FAIL'} {c.name}: {c.detail}" for c in self.checks]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["reasons"] = self.reasons
        return out


def _metric(block: dict[str, Any] | None, metric: str, who: str) -> float:
    try:
        value = block["metrics"][metric]  # type: ignore[index]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{who} evaluation has no metric {metric!r}") from exc
    if not isinstance(value, int | float):
        raise ValueError(f"{who} metric {metric!r} is not a number: {value!r}")
    return float(value)


def decide(candidate: dict[str, Any], champion: dict[str, Any] | None, policy: GatePolicy) -> Verdict:
    """Verdict for a candidate; `champion` is None when no model holds the champion alias."""
    metric = policy.metric
    cand = _metric(candidate, metric, "candidate")
    checks = [
        Check(
            name="floor",
            value=cand,
            threshold=policy.min_pr_auc,
            passed=cand >= policy.min_pr_auc,
            detail=f"candidate {metric} {cand:.4f} {'>=' if cand >= policy.min_pr_auc else '<'} floor {policy.min_pr_auc:.4f}",
        )
    ]
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

    champ = _metric(champion, metric, "champion")
    threshold = champ - policy.max_regression
    checks.append(
        Check(
            name="non_regression",
            value=cand,
            threshold=threshold,
            passed=cand >= threshold,
            detail=(
                f"candidate {metric} {cand:.4f} vs champion v{champion.get('version')} {champ:.4f} "
                f"(tolerance {policy.max_regression:.4f}, needs >= {threshold:.4f})"
            ),
        )
    )
    if policy.slice_max_regression is not None:
        cand_slices = candidate.get("slices") or {}
        champ_slices = champion.get("slices") or {}
        for key in sorted(set(cand_slices) & set(champ_slices)):
            c_val = float(cand_slices[key][metric])
            h_val = float(champ_slices[key][metric])
            limit = h_val - policy.slice_max_regression
            checks.append(
                Check(
                    name=f"slice:{key}",
                    value=c_val,
                    threshold=limit,
                    passed=c_val >= limit,
                    detail=f"{metric} {c_val:.4f} vs champion {h_val:.4f} (needs >= {limit:.4f})",
                )
            )
    return Verdict(
        passed=all(c.passed for c in checks),
        checks=checks,
        champion_version=str(champion.get("version")) if champion.get("version") is not None else None,
        policy=asdict(policy),
    )
