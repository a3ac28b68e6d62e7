"""A real Prometheus server on the sandbox's load balancer, scraping every
agent: Debian's `prometheus` package, installed in the image, configured
and started here (`console sandbox up --prometheus`).

Every agent is scraped on each slot's port (8080 main, 8081 blue, 8082
green) every second, with the target "address:port" as its `instance`
label and the host's name as `host`, so a plan's query can select one
instance's series with {instance} or {host}.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

from inventory.json_types import JSONObject

from .common import DEFAULT_STATE_DIR, LB_IP, LB_NAME, SandboxError
from .hosts import _load, exec_in, host_root
from .provision import SLOTS

PORT = 9090
SCRAPE_SECONDS = 1
UNIT = "prometheus.service"


def url() -> str:
    return f"http://{LB_IP}:{PORT}"


def config(agents: dict[str, str]) -> JSONObject:
    """prometheus.yml: one static target group per agent host."""
    return {
        "global": {"scrape_interval": f"{SCRAPE_SECONDS}s", "scrape_timeout": f"{SCRAPE_SECONDS}s",
                   "evaluation_interval": "15s"},
        "scrape_configs": [{
            "job_name": "agents",
            "static_configs": [{"targets": [f"{ip}:{port}" for port in SLOTS.values()], "labels": {"host": name}}
                               for name, ip in agents.items()],
        }],
    }


def start(state_dir: Path = DEFAULT_STATE_DIR, log: Callable[[str], None] = print, timeout: float = 60) -> str:
    """Configure and (re)start the server on the LB; returns its URL once
    it answers ready and has scraped the agents."""
    hosts = _load(state_dir).get("hosts", {})
    agents = {n: h["ip"] for n, h in hosts.items() if h["role"] == "agent"}
    if not agents:
        raise SandboxError("the sandbox fleet is not up")
    root = host_root(LB_NAME, state_dir)
    conf = root / "etc/prometheus/prometheus.yml"
    text = json.dumps(config(agents), indent=1) + "\n"
    running = exec_in(LB_NAME, ["systemctl", "is-active", "--quiet", UNIT], state_dir).returncode == 0
    if not running or not conf.exists() or conf.read_text() != text:
        # a restart forgets which series went stale: series of a version an
        # instance no longer runs answer queries for 5 minutes, so restart
        # only when something changed
        conf.write_text(text)
        # a short retention: the sandbox's history is minutes long
        (root / "etc/default/prometheus").write_text('ARGS="--storage.tsdb.retention.time=1d"\n')
        exec_in(LB_NAME, ["systemctl", "enable", UNIT], state_dir, check=True)
        exec_in(LB_NAME, ["systemctl", "restart", UNIT], state_dir, check=True)
    wait_scraping(len(agents), timeout)
    log(f"prometheus on {LB_NAME} scraping {len(agents)} agents: {url()}")
    return url()


def stop(state_dir: Path = DEFAULT_STATE_DIR) -> None:
    exec_in(LB_NAME, ["systemctl", "stop", UNIT], state_dir, check=True)


def wait_scraping(agents: int, timeout: float) -> None:
    """Until every agent's main port has been scraped up (`up == 1`)."""
    deadline = time.monotonic() + timeout
    last = ""
    query = urllib.parse.urlencode({"query": f'count(up{{job="agents",instance=~".*:{SLOTS["main"]}"}} == 1)'})
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url()}/api/v1/query?{query}", timeout=3) as r:
                result = json.loads(r.read())["data"]["result"]
                if result and int(float(result[0]["value"][1])) >= agents:
                    return
                last = f"{result[0]['value'][1] if result else 0} of {agents} agents scraped"
        except (OSError, urllib.error.URLError, ValueError, KeyError) as exc:
            last = str(exc)
        time.sleep(0.5)
    raise SandboxError(f"prometheus on {LB_NAME} is not scraping the agents: {last}")
