#!/usr/bin/env python3
"""SSH fan-out to N real sshd, cold and warm: console SshPool vs Ansible vs OpenSSH.

    sudo python3 bench/ssh_fanout.py [--hosts 50] [--repeats 3]

Builds N light hosts as network namespaces (bridge rcfan0, 10.79.0.0/24,
veth pairs), each running its own `/usr/sbin/sshd -D -f CONFIG` with host
keys and an authorized key generated in a temp dir. Runs `uname -r` on all:
  * SshPool (inventory/ssh.py): cold = new pool; warm = second run on the same pool
  * ansible all -m command -a 'uname -r' (forks = N, pipelining, ControlPersist;
    cold = fresh ControlPath dir, warm = same dir right after)
  * OpenSSH: N parallel `ssh` processes (asyncio), cold without ControlMaster
    reuse, warm through ControlMaster sockets opened by the cold run.
Everything (namespaces, veths, bridge, sshd) is torn down in `finally`.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, fmt, start  # noqa: E402

BRIDGE, SUBNET = "rcfan0", "10.79.0"
USER = "rcfanout"  # a plain /bin/sh user, see setup()


def sh(*argv, check=True):
    return subprocess.run([str(a) for a in argv], check=check, capture_output=True, text=True)


def setup(n: int, tmp: Path) -> list[str]:
    # A plain user with /bin/sh: root's shell on this machine sources a heavy
    # ~/.bashrc (pyenv) on every SSH session, ~0.25 s of CPU that would
    # swamp what the tools themselves cost.
    if subprocess.run(["id", USER], capture_output=True).returncode != 0:
        sh("useradd", "--system", "--no-create-home", "--shell", "/bin/sh", USER)
    sh("usermod", "-p", "*", USER)  # not locked: sshd without PAM refuses locked accounts
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", tmp / "id")
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", tmp / "hostkey")
    (tmp / "authorized_keys").write_text((tmp / "id.pub").read_text())
    os.chmod(tmp, 0o755)
    os.chmod(tmp / "authorized_keys", 0o644)
    os.chmod(tmp / "id", 0o600)
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    sh("ip", "link", "add", BRIDGE, "type", "bridge")
    sh("ip", "addr", "add", f"{SUBNET}.1/24", "dev", BRIDGE)
    sh("ip", "link", "set", BRIDGE, "up")
    hostpub = (tmp / "hostkey.pub").read_text().split()[:2]
    kh, ips = [], []
    for i in range(n):
        ns, ip = f"rcfan{i}", f"{SUBNET}.{10 + i}"
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", f"rcfh{i}", "type", "veth", "peer", "name", f"rcfc{i}")
        sh("ip", "link", "set", f"rcfh{i}", "master", BRIDGE, "up")
        sh("ip", "link", "set", f"rcfc{i}", "netns", ns)
        sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", f"rcfc{i}")
        sh("ip", "-n", ns, "link", "set", f"rcfc{i}", "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        cfg = tmp / f"sshd{i}.conf"
        cfg.write_text(f"ListenAddress {ip}\nHostKey {tmp / 'hostkey'}\nPidFile {tmp}/sshd{i}.pid\n"
                       f"AuthorizedKeysFile {tmp}/authorized_keys\nPermitRootLogin prohibit-password\n"
                       "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
                       "MaxStartups 100:30:200\nMaxSessions 10\nLogLevel ERROR\n")
        subprocess.Popen(["ip", "netns", "exec", ns, "/usr/sbin/sshd", "-D", "-f", str(cfg)],
                         stdout=subprocess.DEVNULL, stderr=open(tmp / f"sshd{i}.log", "wb"), start_new_session=True)
        kh.append(f"{ip} {hostpub[0]} {hostpub[1]}\n")
        ips.append(ip)
    (tmp / "known_hosts").write_text("".join(kh))
    os.makedirs("/run/sshd", exist_ok=True)
    deadline = time.monotonic() + 20
    import socket
    for ip in ips:
        while True:
            try:
                socket.create_connection((ip, 22), 1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"sshd on {ip} did not start: {(tmp / 'sshd0.log').read_text()[-300:]}") from None
                time.sleep(0.1)
    return ips


def teardown(n: int, tmp: Path) -> None:
    for i in range(n):
        pidf = tmp / f"sshd{i}.pid"
        try:
            os.kill(int(pidf.read_text()), 15)
        except (OSError, ValueError):
            pass
        sh("ip", "netns", "del", f"rcfan{i}", check=False)  # removes rcfc{i} and its peer rcfh{i}
        sh("ip", "link", "del", f"rcfh{i}", check=False)
    sh("ip", "link", "del", BRIDGE, check=False)


def cpu_children() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def cpu_self() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def pool_round(ips, tmp: Path) -> tuple[float, float, float, float]:
    sys.path.insert(0, str(ROOT))
    from inventory.model import Host
    from inventory.ssh import SshPool
    hosts = [Host(name=f"h{i}", address=ip, user=USER, key_file=str(tmp / "id"),
                  vars={"rollout_known_hosts": str(tmp / "known_hosts")}) for i, ip in enumerate(ips)]
    pool = SshPool()
    try:
        out = []
        for _ in range(2):  # cold, then warm on the same connections
            c0, t0 = cpu_self(), time.monotonic()
            recs = await asyncio.gather(*(pool.run(h, "uname -r", 10) for h in hosts))
            out += [time.monotonic() - t0, cpu_self() - c0]
            assert all(r.exit_status == 0 for r in recs), recs[:2]
        return tuple(out)
    finally:
        await pool.close()


async def openssh_round(ips, tmp: Path, forks: int) -> tuple[float, float, float, float]:
    cp = Path(tempfile.mkdtemp(prefix="oscp-", dir="/tmp"))
    base = ["ssh", "-i", str(tmp / "id"), "-o", f"UserKnownHostsFile={tmp / 'known_hosts'}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ControlMaster=auto",
            "-o", f"ControlPath={cp}/%h", "-o", "ControlPersist=60s", "-o", "LogLevel=ERROR"]
    sem = asyncio.Semaphore(forks)

    async def one(ip):
        async with sem:
            p = await asyncio.create_subprocess_exec(*base, f"{USER}@{ip}", "uname -r", stdout=asyncio.subprocess.PIPE,
                                                     stderr=asyncio.subprocess.PIPE)
            out, err = await p.communicate()
            assert p.returncode == 0, err
    out = []
    try:
        for _ in range(2):
            c0, t0 = cpu_children(), time.monotonic()
            await asyncio.gather(*(one(ip) for ip in ips))
            out += [time.monotonic() - t0, cpu_children() - c0]
    finally:
        for ip in ips:
            subprocess.run([*base, "-O", "exit", f"{USER}@{ip}"], capture_output=True)
        shutil.rmtree(cp, ignore_errors=True)
    return tuple(out)


def ansible_round(ips, tmp: Path, forks: int) -> tuple[float, float, float, float]:
    inv = tmp / "fan.ini"
    inv.write_text("[all]\n" + "".join(f"{ip}\n" for ip in ips) +
                   f"[all:vars]\nansible_user={USER}\nansible_ssh_private_key_file={tmp / 'id'}\n")
    cp = Path(tempfile.mkdtemp(prefix="ancp-", dir="/tmp"))
    env = dict(os.environ, ANSIBLE_CONFIG=str(Path(__file__).resolve().parent / "ansible" / "ansible.cfg"),
               ANSIBLE_FORKS=str(forks), ANSIBLE_SSH_CONTROL_PATH_DIR=str(cp),
               ANSIBLE_SSH_ARGS=f"-o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile={tmp / 'known_hosts'}")
    out = []
    try:
        for _ in range(2):
            c0, t0 = cpu_children(), time.monotonic()
            p = subprocess.run(["ansible", "all", "-i", str(inv), "-m", "command", "-a", "uname -r", "-o"],
                               env=env, capture_output=True, text=True, timeout=300)
            out += [time.monotonic() - t0, cpu_children() - c0]
            assert p.returncode == 0, p.stdout[-800:] + p.stderr[-800:]
    finally:
        for s in cp.glob("*"):
            subprocess.run(["ssh", "-o", f"ControlPath={s}", "-O", "exit", "x"], capture_output=True)
        shutil.rmtree(cp, ignore_errors=True)
    return tuple(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    start("ssh_fanout")
    tmp = Path(tempfile.mkdtemp(prefix="fanout-"))
    res: dict[str, list] = {"SshPool": [], "OpenSSH parallel": [], "ansible -m command": []}
    try:
        ips = setup(args.hosts, tmp)
        for i in range(args.repeats):
            res["SshPool"].append(asyncio.run(pool_round(ips, tmp)))
            res["OpenSSH parallel"].append(asyncio.run(openssh_round(ips, tmp, args.hosts)))
            res["ansible -m command"].append(ansible_round(ips, tmp, args.hosts))
            print(f"round {i + 1}: " + "; ".join(f"{k} " + " ".join(f"{x:.2f}" for x in v[-1]) for k, v in res.items()),
                  flush=True)
    finally:
        teardown(args.hosts, tmp)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n`uname -r` on {args.hosts} sshd (forks/parallelism {args.hosts}); CPU = controller user+sys")
    print("| tool | cold wall | cold CPU | warm wall | warm CPU | cold wall vs SshPool |")
    print("|---|---|---|---|---|---|")
    from _common import stats
    ref = stats([r[0] for r in res["SshPool"]])["median"]
    for k, v in res.items():
        print(f"| {k} | {fmt([r[0] for r in v])} | {fmt([r[1] for r in v])} | {fmt([r[2] for r in v], 's', 3)} | "
              f"{fmt([r[3] for r in v], 's', 3)} | x{stats([r[0] for r in v])['median'] / ref:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
