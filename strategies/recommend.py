"""The seed article's strategy decision tree (section 5.2), as a pure
function that explains its answer.

    criticality? critical -> blue-green
    non-critical: scale? large -> rolling
    medium/small: budget? sufficient -> canary
    limited: test environment? sufficient -> canary, limited -> rolling
"""
from __future__ import annotations

from dataclasses import dataclass

QUESTIONS = {
    "criticality": ("Is the system critical (finance, medical, enterprise core)?", ("critical", "non-critical")),
    "scale": ("How large is the fleet?", ("large", "medium", "small")),
    "budget": ("Can you afford extra capacity during a release?", ("sufficient", "limited")),
    "test_env": ("Do you have a production-like test environment?", ("sufficient", "limited")),
}


@dataclass(frozen=True)
class Recommendation:
    strategy: str
    path: tuple[str, ...]
    why: str
    example: str


def recommend(criticality: str, scale: str | None = None, budget: str | None = None,
              test_env: str | None = None) -> Recommendation:
    """Walk the tree; only the answers the path needs are required."""
    path = [f"criticality={criticality}"]
    if criticality == "critical":
        return Recommendation("blue_green", tuple(path),
                              "critical systems put risk control first: a tested idle colour, one atomic "
                              "switch and an immediate switch back", "examples/blue-green.yaml")
    _need("scale", scale)
    path.append(f"scale={scale}")
    if scale == "large":
        return Recommendation("rolling", tuple(path),
                              "at large scale a rolling replacement needs no extra capacity and no downtime; "
                              "per-instance monitoring limits the blast radius", "examples/rolling.yaml")
    _need("budget", budget)
    path.append(f"budget={budget}")
    if budget == "sufficient":
        return Recommendation("canary", tuple(path),
                              "with capacity to spare, a canary widens exposure step by step "
                              "(1 -> 5 -> 10 -> 50 -> 100 %) under analysis gates", "examples/canary.yaml")
    _need("test_env", test_env)
    path.append(f"test_env={test_env}")
    if test_env == "sufficient":
        return Recommendation("canary", tuple(path),
                              "budget is limited but a good test environment catches most faults first, so "
                              "a small canary in production is enough", "examples/canary.yaml")
    return Recommendation("rolling", tuple(path),
                          "limited budget and limited testing: replace a few instances at a time and roll "
                          "back on the first unhealthy batch", "examples/rolling.yaml")


class MissingAnswer(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _need(key: str, value: str | None) -> None:
    if value is None:
        raise MissingAnswer(key)
    allowed = QUESTIONS[key][1]
    if value not in allowed:
        raise ValueError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
