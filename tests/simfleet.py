"""Builders for SIMULATED fleets and plans used by the fast engine tests."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

GOOD = {"1.0.0": {}, "2.0.0": {}}


def write_inventory(path: Path, hosts: int = 6, releases: dict[str, Any] | None = None,
                    rps: float = 200.0) -> Path:
    """A simulated Ansible-style inventory with `hosts` agents and one LB."""
    doc = {"all": {"vars": {"rollout_simulated": True, "sim_releases": releases or GOOD},
                   "children": {"agents": {"hosts": {f"agent-{n:02d}": None for n in range(1, hosts + 1)}},
                                "lb": {"hosts": {"lb-01": {"sim_rps": rps}}}}}}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def write_plan(path: Path, strategy: str = "rolling", **sections: Any) -> Path:
    """A native plan with fast health checks; `sections` override keys."""
    doc: dict[str, Any] = {
        "strategy": strategy, "version": "2.0.0",
        "health": {"interval": "1s", "passes": 2, "deadline": "120s"},  # 1.2 s of real time at SCALE 100: room for a busy machine
        "canary": {"sample_interval": "2s",
                   "steps": [{"set_weight": 10}, {"analysis": "10s"}, {"set_weight": 50},
                             {"analysis": "10s"}, {"set_weight": 100}]},
        "blue_green": {"mode": "units", "active": "blue", "rollback_window": "10s"},
        "thresholds": {"error_rate": "1%", "persistence": 2, "min_requests": 20},
    }
    doc.update(sections)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path
