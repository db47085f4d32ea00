"""The bench's scenarios by name: the spike's two, plus contention, drain and the demo's race."""

from __future__ import annotations

from dataclasses import dataclass

from workclaim.errors import ValidationError


@dataclass(frozen=True, slots=True)
class Scenario:
    """Workers released together over fresh items, `runs` times; each claims and completes
    until the queue answers empty."""

    name: str
    workers: int
    items: int
    runs: int
    description: str

    def __post_init__(self) -> None:
        if not 1 <= self.workers <= 256:
            raise ValidationError("workers must be between 1 and 256")
        if not 1 <= self.items <= 10_000_000:
            raise ValidationError("items must be between 1 and 10,000,000")
        if not 1 <= self.runs <= 100_000:
            raise ValidationError("runs must be between 1 and 100,000")


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("spike-2x10", 2, 10, 50, "the spike's low-contention baseline"),
        Scenario("spike-10x10", 10, 10, 50, "the spike's high-contention scenario"),
        Scenario("contention", 32, 10_000, 1, "32 processes racing over 10,000 items"),
        Scenario("drain", 10, 20_000, 1, "10 processes draining 20,000 items"),
    )
}
DEFAULT_SCENARIOS = ("spike-2x10", "spike-10x10")


def resolve(
    names: list[str],
    *,
    workers: int | None = None,
    items: int | None = None,
    runs: int | None = None,
) -> list[Scenario]:
    """Scenarios by name; `--workers/--items/--runs` make a custom one (or override a named one's
    figures when names are given too)."""
    unknown = [n for n in names if n not in SCENARIOS and n != "custom"]
    if unknown:
        raise ValidationError(
            f"unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)} or give "
            "--workers/--items/--runs for a custom one"
        )
    custom = any(v is not None for v in (workers, items, runs))
    if not names:
        # --runs alone repeats the spike's scenarios; --workers or --items make a custom one.
        names = ["custom"] if workers is not None or items is not None else list(DEFAULT_SCENARIOS)
    chosen = []
    for name in names:
        base = SCENARIOS.get(name, Scenario("custom", 4, 1_000, 1, "custom"))
        if custom:
            label = name if name != "custom" else "custom"
            base = Scenario(
                label if name == "custom" else f"{name}*",
                base.workers if workers is None else workers,
                base.items if items is None else items,
                base.runs if runs is None else runs,
                base.description + " (figures overridden)" if name != "custom" else "custom",
            )
        chosen.append(base)
    return chosen
