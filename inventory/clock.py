"""Time as the engine sees it.

Every wait in the engine goes through a Clock, so a simulated fleet can run
the seed's 30 s intervals in moments (``--time-scale``) without a single
branch in the strategy code.
"""
from __future__ import annotations

import asyncio
import time


class Clock:
    """Wall-clock time: what real fleets use."""

    scale = 1.0

    def now(self) -> float:
        """Seconds on this clock (monotonic; only differences matter)."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ScaledClock(Clock):
    """A clock that runs `scale` times faster than the wall clock."""

    def __init__(self, scale: float = 1.0):
        if scale <= 0:
            raise ValueError("time scale must be positive")
        self.scale = float(scale)
        self._origin = time.monotonic()

    def now(self) -> float:
        return self._origin + (time.monotonic() - self._origin) * self.scale

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.scale)
