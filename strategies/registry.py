"""Strategy name -> runner; the only place that knows all three."""
from __future__ import annotations

from typing import Any

from .engine import StrategyRunner
from .rolling import Rolling


def runner_for(plan: Any) -> StrategyRunner:
    from .bluegreen import BlueGreen
    from .canary import Canary

    return {"rolling": Rolling, "canary": Canary, "blue_green": BlueGreen}[plan.strategy]()
