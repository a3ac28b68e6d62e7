"""The real sandbox fleet: lb-01 and agent-01..NN as systemd-nspawn
containers (systemd, sshd, nginx) on overlays of one debootstrap image,
bridged on rcbr0 (10.77.0.0/24). Used by integration tests and by
``console sandbox up|down|status|release``. Needs root on Linux.
"""
from .common import BRIDGE, DEFAULT_IMAGE_DIR, DEFAULT_STATE_DIR, LB_IP, LB_NAME, SandboxError, agent_ip, agent_name
from .hosts import down, exec_in, host_root, net_exec, start_host, status, stop_host, up, write_release
from .image import ensure_image
from .provision import INITIAL_VERSION, SLOTS

__all__ = [
    "BRIDGE", "DEFAULT_IMAGE_DIR", "DEFAULT_STATE_DIR", "INITIAL_VERSION", "LB_IP", "LB_NAME",
    "SLOTS", "SandboxError", "agent_ip", "agent_name", "down", "ensure_image", "exec_in",
    "host_root", "net_exec", "start_host", "status", "stop_host", "up", "write_release",
]
