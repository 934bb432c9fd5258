"""What ``streamjoin validate`` reports: findings, the report and its rendering.

Each check adds its disagreements to a :class:`FindingCollector` as one
:class:`Finding` per kind of problem (a count and a few examples); the
:class:`ValidationReport` holds them with the run's statistics and is ``ok``
only when there are none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Finding:
    """One kind of disagreement, how often it occurred, and a few examples."""

    problem: str
    count: int
    examples: tuple[str, ...] = ()


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of :func:`dataflows.validate.validate`: ``ok`` iff there are no
    findings."""

    run_dir: Path
    findings: tuple[Finding, ...]
    stats: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.findings

    def problems(self) -> set[str]:
        """The names of the problems found (for tests and scripts)."""
        return {f.problem for f in self.findings}

    def render(self) -> str:
        """A human-readable report."""
        lines = [f"validate {self.run_dir}"]
        lines += [f"  {name:<34} {value:>12,}" for name, value in self.stats.items()]
        for f in self.findings:
            lines.append(f"PROBLEM {f.problem}: {f.count:,}")
            lines += [f"    {example}" for example in f.examples]
        if self.ok:
            lines.append(f"OK: output matches the batch join exactly ({self.elapsed_s:.1f} s)")
        else:
            lines.append(
                f"FAILED: {len(self.findings)} kind(s) of problem ({self.elapsed_s:.1f} s)"
            )
        return "\n".join(lines)


class FindingCollector:
    """Collects findings, keeping at most ``max_examples`` examples of each."""

    def __init__(self, max_examples: int) -> None:
        self.max = max_examples
        self.findings: list[Finding] = []

    def add(self, problem: str, count: int, examples: Sequence[str] = ()) -> None:
        """Record ``count`` occurrences of ``problem`` (nothing if ``count`` is 0)."""
        if count:
            self.findings.append(Finding(problem, count, tuple(examples[: self.max])))
