"""Boot, stop and inspect the sandbox fleet (systemd-nspawn containers on
overlays of one image, bridged on rcbr0).

State directory layout::

    id_ed25519, id_ed25519.pub   sandbox login key (root and deploy)
    known_hosts                  "IP ssh-ed25519 AAAA..." per host
    inventory.yaml               Ansible YAML inventory
    state.json                   hosts, pids, ips, roots
    hosts/NAME/{upper,work,root} overlay dirs (root is the merged view)
    hosts/NAME/nspawn.log        the container's console
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, NotRequired, Sequence, TypedDict, TypeGuard

import yaml

from inventory.validate import RELEASE_VERSION

from . import agent_service, cgroups, network, provision
from .common import (
    BRIDGE,
    DEFAULT_IMAGE_DIR,
    DEFAULT_STATE_DIR,
    LB_IP,
    LB_NAME,
    MAX_AGENTS,
    NET,
    SandboxError,
    agent_ip,
    agent_name,
    preflight,
    run,
)
from .image import ensure_image

BOOT_PARALLEL = 4
SSH_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
Log = Callable[[str], None]

_BEHAVIOUR_KEYS = tuple(agent_service.DEFAULTS)  # what the stand-in agent reads
_popens: dict[int, subprocess.Popen[bytes]] = {}  # nspawn processes started by this process
_state_mutex = threading.Lock()


# ---------------------------------------------------------------- state file

class HostRecord(TypedDict):
    """One host in state.json: what `up` planned, then provisioned and booted."""

    name: str
    ip: str
    role: str  # "lb" or "agent"
    root: NotRequired[str]  # the merged overlay root, from provisioning on
    host_key: NotRequired[str]  # "ssh-ed25519 AAAA...", for known_hosts
    pid: NotRequired[int | None]  # systemd-nspawn's, None once stopped
    init_pid: NotRequired[int | None]  # the container's init, as the machine sees it


class State(TypedDict, total=False):
    """state.json: written by this module only (read back as it wrote it)."""

    size: int  # agents
    image: str
    bridge: str
    complete: bool  # `up` finished (a crashed up leaves False: torn down next time)
    hosts: dict[str, HostRecord]


def _state_path(state_dir: Path) -> Path:
    return Path(state_dir) / "state.json"


def _load(state_dir: Path) -> State:
    try:
        state: State = json.loads(_state_path(state_dir).read_text())
        return state
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise SandboxError(f"{_state_path(state_dir)} is corrupt: {exc}") from exc


def _save(state_dir: Path, state: State) -> None:
    path = _state_path(state_dir)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


@contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """Serialise up/down/start/stop across processes (the lock file lives
    beside the state dir, which `down` deletes)."""
    state_dir = Path(state_dir)
    state_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(state_dir.parent / f".{state_dir.name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _plan(hosts: int) -> list[HostRecord]:
    plan: list[HostRecord] = [{"name": LB_NAME, "ip": LB_IP, "role": "lb"}]
    plan += [{"name": agent_name(i), "ip": agent_ip(i), "role": "agent"} for i in range(1, hosts + 1)]
    return plan


# ---------------------------------------------------------------- processes

def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _is_our_nspawn(pid: int | None, root: str) -> bool:
    """True while pid is a live (non-zombie) systemd-nspawn for this root."""
    if not pid or not root:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
        return False
    cmd = _cmdline(pid)
    return bool(cmd) and cmd[0].endswith("systemd-nspawn") and root in cmd


def _reap(pid: int) -> None:
    p = _popens.get(pid)
    if p is not None:
        if p.poll() is not None:
            _popens.pop(pid, None)
        return
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _orphan_inits(names: Iterable[str]) -> list[int]:
    """Container inits of sandbox hosts whose nspawn is gone (reparented to
    PID 1). nspawn killed early in its setup leaves one behind, holding the
    host's veth and IP; recognised by hostname plus the sandbox layout."""
    names = set(names)
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
            if stat[0] in ("Z", "X") or int(stat[1]) != 1:
                continue
            ns = network.nspid(int(d.name))
            if len(ns) < 2 or ns[-1] != "1":
                continue
            host = (d / "root/etc/hostname").read_text().strip()
            if host in names and (d / "root" / provision.SANDBOX_MARK).read_text().strip() == BRIDGE:
                out.append(int(d.name))
        except (OSError, IndexError, ValueError):
            continue
    return out


def _kill_orphans(names: Iterable[str], timeout: float = 10.0) -> int:
    pids = _orphan_inits(names)
    found = len(pids)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)  # PID 1 of its namespace: takes the namespace down
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if p in _orphan_inits(names)]
        time.sleep(0.1)
    if pids:
        raise SandboxError(f"orphaned sandbox containers survived SIGKILL: {pids}")
    return found


def _nspawn_pids_for(root: str) -> list[int]:
    """Live nspawn processes whose -D is root (finds leftovers of a crashed up)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and _is_our_nspawn(int(d.name), root):
            out.append(int(d.name))
    return out


def _terminate(pid: int, root: str, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM the nspawn process (clean container shutdown), SIGKILL on timeout."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if not _is_our_nspawn(pid, root):
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap(pid)
            if not _is_our_nspawn(pid, root):
                return
            time.sleep(0.1)
    raise SandboxError(f"nspawn {pid} for {root} survived SIGKILL")


def _stop(host: HostRecord, timeout: float = STOP_TIMEOUT) -> None:
    """Stop one host: SIGTERM nspawn (clean shutdown), then SIGKILL the
    container's init and nspawn; finally kill an init left orphaned."""
    pid, init = host.get("pid"), host.get("init_pid")
    try:
        _terminate(pid, host["root"], timeout) if pid else None
    finally:
        if init and _is_container_init(init, host["name"]):
            try:
                os.kill(init, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _kill_orphans([host["name"]])
        cgroups.remove(machine_name(host["name"]))


def _is_container_init(pid: int, name: str) -> bool:
    ns = network.nspid(pid)
    try:
        return len(ns) > 1 and ns[-1] == "1" and \
            Path(f"/proc/{pid}/root/etc/hostname").read_text().strip() == name
    except OSError:
        return False


def _mounted(path: Path) -> bool:
    target = str(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return sorted({p for p in points if p.startswith(prefix)}, key=len, reverse=True)


# ---------------------------------------------------------------- one host

def _host_dirs(state_dir: Path, name: str) -> dict[str, Path]:
    base = Path(state_dir) / "hosts" / name
    return {k: base / k for k in ("upper", "work", "root")} | {"base": base, "log": base / "nspawn.log"}


def _mount(image: Path, dirs: Mapping[str, Path]) -> None:
    for k in ("upper", "work", "root"):
        dirs[k].mkdir(parents=True, exist_ok=True)
    if not _mounted(dirs["root"]):
        run(["mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir={image},upperdir={dirs['upper']},workdir={dirs['work']}", dirs["root"]])


PROPAGATE_DIR = Path("/run/systemd/nspawn/propagate")


def machine_name(name: str) -> str:
    """nspawn's machine name: the host name on net 0, suffixed elsewhere so
    fleets side by side never share /run/systemd/nspawn/propagate/NAME."""
    return name if NET == 0 else f"{name}-n{NET}"


def _clear_propagate(name: str) -> None:
    """nspawn leaves /run/systemd/nspawn/propagate/NAME behind when killed; on
    a machine whose /run is not a tmpfs the next nspawn of NAME then refuses
    to start ("Attempted to remove disk file system"). Remove it ourselves."""
    d = PROPAGATE_DIR / machine_name(name)
    if d.is_dir() and not _mounts_under(d) and not _mounted(d):
        shutil.rmtree(d, ignore_errors=True)


def _launch(state_dir: Path, host: HostRecord) -> None:
    """Start nspawn for host (root already mounted and provisioned), give it
    its address, record its pid; does not wait for services."""
    dirs = _host_dirs(state_dir, host["name"])
    root = str(dirs["root"])
    _clear_propagate(host["name"])
    with open(dirs["log"], "ab") as log:
        machine = machine_name(host["name"])
        proc = subprocess.Popen(cgroups.enter_and_exec(cgroups.prepare(machine), [
            "systemd-nspawn", "-D", root, "--register=no", "--keep-unit", "-M", machine,
            "-b", f"--network-bridge={BRIDGE}", "--console=passive"]),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    _popens[proc.pid] = proc
    host["pid"] = proc.pid
    host["root"] = root
    _update_host(state_dir, host)
    try:
        init = network.container_init(proc.pid)
    except SandboxError:
        tail = dirs["log"].read_text(errors="replace").strip().splitlines()[-1:] or ["?"]
        raise SandboxError(f"{host['name']}: nspawn exited early: {tail[0]}") from None
    host["init_pid"] = init
    network.configure_address(init, host["ip"])
    _update_host(state_dir, host)


def _update_host(state_dir: Path, host: HostRecord) -> None:
    with _state_mutex:
        state = _load(state_dir)
        state.setdefault("hosts", {})[host["name"]] = host.copy()
        _save(state_dir, state)


def _wait_ready(host: HostRecord) -> None:
    network.wait_tcp(host["ip"], 22, SSH_TIMEOUT, banner=b"SSH-")
    if host["role"] == "lb":
        network.wait_tcp(host["ip"], 80, SSH_TIMEOUT)
    _wait_logins(host)


def _wait_logins(host: HostRecord, timeout: float = SSH_TIMEOUT) -> None:
    """sshd answers before boot lets users other than root in: systemd keeps
    /run/nologin until systemd-user-sessions starts, and pam_nologin refuses
    `deploy` meanwhile (ssh exits 255 with nothing on stderr; seen in a CI
    rehearsal, after a host was booted again). If that unit fails, the file
    stays: containers sharing one cgroup did that (see cgroups.py)."""
    end = time.monotonic() + timeout
    while subprocess.run(["nsenter", "-t", str(host["init_pid"]), "-m", "test", "-e", "/run/nologin"],
                         capture_output=True).returncode == 0:
        if time.monotonic() > end:
            raise SandboxError(f"{host['name']}: /run/nologin still there {timeout:g}s after boot")
        time.sleep(0.05)


def _boot(state_dir: Path, host: HostRecord, log: Log) -> None:
    t0 = time.monotonic()
    _launch(state_dir, host)
    _wait_ready(host)
    log(f"  {host['name']:<9} {host['ip']:<12} up in {time.monotonic() - t0:.1f}s")


# ---------------------------------------------------------------- public API

def host_root(name: str, state_dir: Path = DEFAULT_STATE_DIR) -> Path:
    """The merged root of a host as seen from the machine (writes are visible inside)."""
    host = _load(state_dir).get("hosts", {}).get(name)
    if host is None:
        raise SandboxError(f"no sandbox host {name!r} (is the fleet up?)")
    return Path(host["root"])


def _running_host(name: str, state_dir: Path) -> HostRecord:
    host = _load(state_dir).get("hosts", {}).get(name)
    if host is None:
        raise SandboxError(f"no sandbox host {name!r} (is the fleet up?)")
    if not _is_our_nspawn(host.get("pid"), host["root"]):
        raise SandboxError(f"sandbox host {name} is not running")
    return host


def exec_in(name: str, argv: Sequence[str], state_dir: Path = DEFAULT_STATE_DIR,
            timeout: float = 60, check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run argv inside a running host (nsenter into all its namespaces).
    For test setup and assertions only: the product talks SSH."""
    host = _running_host(name, state_dir)
    proc = subprocess.run(["nsenter", "-t", str(host["init_pid"]), "-a", *map(str, argv)],
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise SandboxError(f"{name}: {' '.join(argv)}: exit {proc.returncode}: "
                           f"{(proc.stderr or proc.stdout).strip()[-200:]}")
    return proc


def net_exec(name: str, argv: Sequence[str], state_dir: Path = DEFAULT_STATE_DIR,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run one of this machine's programs inside a running host's network
    namespace only (its own files stay the machine's): a tool the image
    does not carry (nft for the soak's lossy link) acting on the host's link."""
    host = _running_host(name, state_dir)
    return subprocess.run(["nsenter", "-t", str(host["init_pid"]), "-n", *map(str, argv)],
                          capture_output=True, text=True, timeout=timeout)


class HostStatus(TypedDict):
    """One host as `console sandbox status` lists it."""

    name: str
    ip: str
    role: str  # "lb" or "agent"
    pid: int | None  # its systemd-nspawn's, None while stopped
    running: bool


def status(state_dir: Path = DEFAULT_STATE_DIR) -> list[HostStatus]:
    """One HostStatus per host."""
    state = _load(state_dir)
    out: list[HostStatus] = []
    for name, h in state.get("hosts", {}).items():
        running = _is_our_nspawn(h.get("pid"), h.get("root", ""))
        out.append({"name": name, "ip": h["ip"], "role": h["role"], "pid": h.get("pid"),
                    "running": running})
    return out


def stop_host(name: str, state_dir: Path = DEFAULT_STATE_DIR, timeout: float = STOP_TIMEOUT) -> None:
    """Shut one host down (SIGTERM to nspawn, SIGKILL after timeout); its overlay
    stays mounted so start_host boots it again with its state."""
    with _locked(state_dir):
        host = _load(state_dir).get("hosts", {}).get(name)
        if host is None:
            raise SandboxError(f"no sandbox host {name!r} (is the fleet up?)")
        _stop(host, timeout)
        host["pid"] = host["init_pid"] = None
        _update_host(state_dir, host)


def start_host(name: str, state_dir: Path = DEFAULT_STATE_DIR, wait: bool = True) -> None:
    """Boot a stopped host again and (by default) wait for its sshd/nginx."""
    with _locked(state_dir):
        host = _load(state_dir).get("hosts", {}).get(name)
        if host is None:
            raise SandboxError(f"no sandbox host {name!r} (is the fleet up?)")
        if _is_our_nspawn(host.get("pid"), host["root"]):
            return
        network.ensure_bridge()
        _launch(state_dir, host)
    if wait:
        _wait_ready(host)


def _behaviour_value_ok(value: object, default: agent_service.BehaviourValue) -> TypeGuard[agent_service.BehaviourValue]:
    """Is `value` of the kind the agent reads for a key whose default is
    `default` (a number for a number, a {hostname: number} map for a map)?"""
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, dict):
        return isinstance(value, dict) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                               for v in value.values())
    return True


def write_release(host_names: Iterable[str] | None, version: str, behaviour: Mapping[str, object],
                  state_dir: Path = DEFAULT_STATE_DIR) -> list[Path]:
    """Ship a release to the catalog of each host (None = every agent host):
    /opt/agent/catalog/VERSION.json, which `install-release VERSION` reads."""
    if not RELEASE_VERSION.fullmatch(version):
        raise SandboxError(f"invalid version {version!r}")
    unknown = set(behaviour) - set(_BEHAVIOUR_KEYS)
    if unknown:
        raise SandboxError(f"unknown behaviour keys: {', '.join(sorted(unknown))}")
    checked: agent_service.Behaviour = {}
    for key, value in behaviour.items():
        if _behaviour_value_ok(value, agent_service.DEFAULTS[key]):
            checked[key] = value
        else:
            raise SandboxError(f"behaviour key {key}: {value!r} is not a {type(agent_service.DEFAULTS[key]).__name__}")
    hosts = _load(state_dir).get("hosts", {})
    if not hosts:
        raise SandboxError("the sandbox fleet is not up")
    names = list(host_names) if host_names is not None else [
        n for n, h in hosts.items() if h["role"] == "agent"]
    paths = []
    for n in names:
        if n not in hosts:
            raise SandboxError(f"no sandbox host {n!r}")
        paths.append(provision.write_catalog(Path(hosts[n]["root"]), version, checked))
    return paths



def _sandbox_files(state_dir: Path) -> dict[str, Path]:
    d = Path(state_dir)
    return {"key": d / "id_ed25519", "known_hosts": d / "known_hosts",
            "inventory": d / "inventory.yaml"}


def _write_inventory(state_dir: Path, hosts: list[HostRecord]) -> Path:
    files = _sandbox_files(state_dir)
    inv = {"all": {
        "vars": {"ansible_user": "root",
                 "ansible_ssh_private_key_file": str(files["key"]),
                 "rollout_known_hosts": str(files["known_hosts"])},
        "children": {
            "agents": {"hosts": {h["name"]: {"ansible_host": h["ip"]}
                                 for h in hosts if h["role"] == "agent"}},
            "lb": {"hosts": {h["name"]: {"ansible_host": h["ip"]}
                             for h in hosts if h["role"] == "lb"}},
        }}}
    files["inventory"].write_text("# sandbox fleet, written by rollout-console\n"
                                  + yaml.safe_dump(inv, sort_keys=False))
    files["known_hosts"].write_text("".join(f"{h['ip']} {h['host_key']}\n" for h in hosts))
    return files["inventory"]


def _fleet_healthy(state: State, hosts: int) -> bool:
    hs = state.get("hosts", {})
    if state.get("size") != hosts or len(hs) != hosts + 1 or not state.get("complete"):
        return False
    return all(_is_our_nspawn(h.get("pid"), h.get("root", "")) for h in hs.values())


def _check_lb(agent_names: set[str], timeout: float = 20.0) -> None:
    """The LB answers 200 from an agent (agents may still be starting)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{LB_IP}/", timeout=3) as r:
                body = json.loads(r.read())
                if r.status == 200 and body.get("host") in agent_names:
                    return
                last = f"{r.status} {body}"
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last = str(exc)
        time.sleep(0.2)
    raise SandboxError(f"load balancer {LB_IP} does not proxy to the agents: {last}")


def up(hosts: int = 6, state_dir: Path = DEFAULT_STATE_DIR, log: Log = print,
       image: Path | None = None, install_deps: bool = False) -> Path:
    """Boot lb-01 and agent-01..NN; return the inventory path. Idempotent when
    the same size is already up; otherwise tears down what is there first.
    `install_deps` apt-installs missing host packages instead of refusing."""
    preflight(install_deps, log)
    if not 1 <= hosts <= MAX_AGENTS:
        raise SandboxError(f"hosts must be 1..{MAX_AGENTS}, not {hosts}")
    state_dir = Path(state_dir)
    with _locked(state_dir):
        state = _load(state_dir)
        # a fleet on another image (an older package list: no prometheus_client
        # for the agent this checkout installs) is rebuilt, not reused
        if _fleet_healthy(state, hosts) and state.get("image") == str(image or DEFAULT_IMAGE_DIR):
            log(f"sandbox fleet already up ({hosts} agents + lb) in {state_dir}")
            for h in state["hosts"].values():  # a fleet left up by an older checkout runs this one's agent
                if h["role"] == "agent":
                    provision.agent_code(Path(h["root"]))
            return _sandbox_files(state_dir)["inventory"]
        if state or (state_dir / "hosts").exists():
            log("tearing down the previous sandbox fleet")
            _down_locked(state_dir, log)
        image = ensure_image(log, image or DEFAULT_IMAGE_DIR)
        t0 = time.monotonic()
        try:
            return _up_locked(hosts, state_dir, image, log, t0)
        except BaseException as exc:
            log(f"sandbox up failed ({exc}); cleaning up")
            try:
                _down_locked(state_dir, log)
            except Exception as cleanup_exc:  # noqa: BLE001
                log(f"cleanup after failed up also failed: {cleanup_exc}")
            raise


INOTIFY_INSTANCES = 1024
_INOTIFY = Path("/proc/sys/fs/inotify/max_user_instances")


def _raise_inotify_limit(log: Log) -> None:
    """Each booted container's systemd takes about ten inotify instances, all
    charged to root; Debian's default of 128 lets about two fleets boot, and
    on a third the containers hang in "initializing" with sshd never started
    (seen). Raise the limit, never lower it."""
    try:
        if int(_INOTIFY.read_text()) < INOTIFY_INSTANCES:
            _INOTIFY.write_text(f"{INOTIFY_INSTANCES}\n")
            log(f"raised fs.inotify.max_user_instances to {INOTIFY_INSTANCES}")
    except (OSError, ValueError) as exc:
        log(f"cannot raise fs.inotify.max_user_instances: {exc}")


def _up_locked(hosts: int, state_dir: Path, image: Path, log: Log, t0: float) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(state_dir, 0o700)
    plan = _plan(hosts)
    _kill_orphans(h["name"] for h in plan)
    _save(state_dir, {"size": hosts, "image": str(image), "bridge": BRIDGE, "complete": False,
                      "hosts": {h["name"]: {**h, "root": str(_host_dirs(state_dir, h["name"])["root"])}
                                for h in plan}})
    key = _sandbox_files(state_dir)["key"]
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "rollout-sandbox", "-f", key])
    pub = key.with_suffix(".pub").read_text().strip()
    network.ensure_bridge()
    agent_ips = [h["ip"] for h in plan if h["role"] == "agent"]
    for h in plan:
        dirs = _host_dirs(state_dir, h["name"])
        _mount(image, dirs)
        root = dirs["root"]
        h["root"] = str(root)
        h["host_key"] = provision.base(root, h["name"], pub)
        if h["role"] == "lb":
            provision.load_balancer(root, agent_ips)
        else:
            provision.agent(root)
        _update_host(state_dir, h)
    _raise_inotify_limit(log)
    log(f"provisioned {len(plan)} hosts in {time.monotonic() - t0:.1f}s; booting")
    with ThreadPoolExecutor(BOOT_PARALLEL) as pool:
        for f in [pool.submit(_boot, state_dir, h, log) for h in plan]:
            f.result()
    lb = next(h for h in plan if h["role"] == "lb")
    check = exec_in(lb["name"], ["nginx", "-t"], state_dir)
    if check.returncode != 0:
        raise SandboxError(f"nginx -t failed on {lb['name']}: {check.stderr.strip().splitlines()[-1:]}")
    _check_lb({h["name"] for h in plan if h["role"] == "agent"})
    inventory = _write_inventory(state_dir, plan)
    with _state_mutex:
        state = _load(state_dir)
        state["complete"] = True
        _save(state_dir, state)
    log(f"sandbox fleet up in {time.monotonic() - t0:.1f}s: {inventory}")
    return inventory


def down(state_dir: Path = DEFAULT_STATE_DIR, log: Log = print) -> None:
    """Stop every host, unmount the overlays, delete the bridge and the state
    dir (the image stays). Safe when nothing is up or after a failed up."""
    preflight()
    with _locked(state_dir):
        _down_locked(Path(state_dir), log)


def _down_locked(state_dir: Path, log: Log) -> None:
    t0 = time.monotonic()
    state: State = _load(state_dir) if _state_path(state_dir).exists() else {}
    roots = {str(h.get("root") or _host_dirs(state_dir, n)["root"]): h.get("pid")
             for n, h in state.get("hosts", {}).items()}
    hosts_dir = state_dir / "hosts"
    if hosts_dir.exists():
        for d in hosts_dir.iterdir():
            roots.setdefault(str(d / "root"), None)
    pids: list[tuple[int, str]] = []
    for root, pid in roots.items():
        found = set(_nspawn_pids_for(root))
        if pid:
            found.add(pid)
        pids += [(p, root) for p in found]
    if pids:
        with ThreadPoolExecutor(8) as pool:
            for f in [pool.submit(_terminate, p, r) for p, r in pids]:
                f.result()
    names = {Path(r).parent.name for r in roots} | {h["name"] for h in _plan(MAX_AGENTS)}
    for n, h in state.get("hosts", {}).items():
        init = h.get("init_pid")
        if init and _is_container_init(init, n):
            try:
                os.kill(init, signal.SIGKILL)
            except ProcessLookupError:
                pass
    killed = _kill_orphans(names)
    for name in names:
        _clear_propagate(name)
        cgroups.remove(machine_name(name))
    for point in _mounts_under(state_dir):
        if run(["umount", point], check=False).returncode != 0:
            run(["umount", "-l", point])
    network.delete_bridge()
    if _mounts_under(state_dir):
        raise SandboxError(f"mounts remain under {state_dir}; not deleting it")
    if state_dir.exists():
        shutil.rmtree(state_dir)
    if pids or state or killed:
        log(f"sandbox fleet down in {time.monotonic() - t0:.1f}s")
