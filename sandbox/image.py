"""The read-only base image every sandbox host is an overlay of."""
from __future__ import annotations

import fcntl
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

from .common import DEFAULT_IMAGE_DIR, MIRROR, PACKAGES, SUITE, SandboxError, preflight, run

REQUIRED = ("usr/bin/python3", "usr/sbin/sshd", "usr/sbin/nginx", "lib/systemd/systemd",
            "usr/bin/sudo", "sbin/ip", "usr/lib/python3/dist-packages/prometheus_client/parser.py",
            "usr/bin/prometheus")


def image_ready(image: Path) -> bool:
    return all((image / p).exists() for p in REQUIRED)


def ensure_image(log: Callable[[str], None] = print, image: Path | None = None) -> Path:
    """Return the image directory, building it with debootstrap if missing.

    The build goes to a temporary sibling directory that is renamed into
    place only when complete, so a present image is always a whole one."""
    image = Path(image or DEFAULT_IMAGE_DIR)
    if image_ready(image):
        return image
    preflight()
    if image.exists():
        raise SandboxError(f"{image} exists but is incomplete: remove it and retry")
    image.parent.mkdir(parents=True, exist_ok=True)
    with open(image.parent / f".{image.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if image_ready(image):  # built by someone else while we waited
            return image
        tmp = Path(tempfile.mkdtemp(prefix=f".{image.name}-", dir=image.parent))
        log(f"building sandbox image {image} (debootstrap {SUITE}, a few minutes)")
        t0 = time.monotonic()
        try:
            run(["debootstrap", "--variant=minbase", f"--include={PACKAGES}", SUITE,
                 str(tmp), MIRROR], timeout=3600)
            run(["chroot", str(tmp), "apt-get", "clean"], check=False, timeout=120)
            if not image_ready(tmp):
                raise SandboxError(f"debootstrap finished but {tmp} lacks {REQUIRED}")
            tmp.rename(image)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log(f"sandbox image built in {time.monotonic() - t0:.0f}s")
    return image
