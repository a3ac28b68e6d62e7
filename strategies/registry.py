"""Strategy name -> runner; the only place that knows all three."""
from __future__ import annotations

from .context import StrategyRunner
from .plan import Plan
from .rolling import Rolling


def runner_for(plan: Plan) -> StrategyRunner:
    from .bluegreen import BlueGreen
    from .canary import Canary

    return {"rolling": Rolling, "canary": Canary, "blue_green": BlueGreen}[plan.strategy]()
