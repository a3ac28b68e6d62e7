"""Private files safe for root beside other users (issue 23, finding 2;
docs/threat-model.md, "other local users"). Tests run as root (the sandbox
needs it), so "another user" is uid 65534 owning what they plant."""
from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from console.control.runs import control_dir
from console.journal import JournalWriter, default_dir
from console.private import NotPrivate, first_own_tree, write_private

OTHER = 65534


@pytest.fixture
def homes(tmp_path, monkeypatch):
    """$HOME (unsetting $XDG_STATE_HOME), owned by this user: a short path
    under /tmp, since a control directory must leave room for a socket's
    name in sun_path's 108 bytes (a longer one is passed over)."""
    home = Path(tempfile.mkdtemp(prefix="h-", dir="/tmp"))
    os.chmod(home, 0o755)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.delenv("ROLLOUT_JOURNAL_DIR", raising=False)
    yield home
    shutil.rmtree(home, ignore_errors=True)


def roots_dir(tmp_path) -> Path:
    target = tmp_path / "root-owned"
    target.mkdir(mode=0o755)
    os.chmod(target, 0o755)
    return target


def test_a_users_runtime_dir_symlink_is_neither_followed_nor_chmodded(tmp_path, homes, monkeypatch):
    target = roots_dir(tmp_path)
    runtime = tmp_path / "run-user-1000"  # the user's XDG_RUNTIME_DIR, kept by `su` without `-`
    runtime.mkdir(mode=0o700)
    (runtime / "rollout-console").symlink_to(target)
    os.chown(runtime, OTHER, OTHER)
    os.lchown(runtime / "rollout-console", OTHER, OTHER)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    got = control_dir()
    assert stat.S_IMODE(target.stat().st_mode) == 0o755  # root's directory untouched
    assert got == homes / ".local/state/rollout-console/control"
    assert stat.S_IMODE(os.lstat(got).st_mode) == 0o700 and os.lstat(got).st_uid == os.geteuid()


def test_a_symlink_in_roots_own_runtime_dir_is_not_followed_either(tmp_path, homes, monkeypatch):
    target = roots_dir(tmp_path)
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    (runtime / "rollout-console").symlink_to(target)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    assert control_dir() != runtime / "rollout-console"
    assert stat.S_IMODE(target.stat().st_mode) == 0o755


def test_another_users_state_home_falls_back_to_the_password_databases_home(tmp_path, monkeypatch):
    users = tmp_path / "users-home"
    users.mkdir()
    os.chown(users, OTHER, OTHER)
    monkeypatch.setenv("HOME", str(users))  # sudo -E
    monkeypatch.setenv("XDG_STATE_HOME", str(users))
    monkeypatch.delenv("ROLLOUT_JOURNAL_DIR", raising=False)
    monkeypatch.setattr("console.private.passwd_home", lambda: tmp_path / "pw-home")
    (tmp_path / "pw-home").mkdir()
    assert default_dir() == tmp_path / "pw-home/.local/state/rollout-console/journals"
    assert list(users.iterdir()) == []


def test_nothing_private_left_refuses_naming_each_candidate(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, OTHER, OTHER)
    with pytest.raises(NotPrivate, match=rf"{theirs}: owned by uid {OTHER}"):
        first_own_tree([(theirs, ("x",))])


def test_a_private_file_replaces_a_planted_symlink_instead_of_writing_through_it(tmp_path):
    victim = tmp_path / "shadow"
    victim.write_text("root's file\n")
    result = tmp_path / "run.result.json"
    result.symlink_to(victim)
    write_private(result, b'{"outcome": "succeeded"}')
    assert victim.read_text() == "root's file\n"
    assert not result.is_symlink() and result.read_bytes() == b'{"outcome": "succeeded"}'
    assert stat.S_IMODE(result.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_planted_journal_reserve_symlink_is_refused_not_truncated(tmp_path):
    victim = tmp_path / "shadow"
    victim.write_text("root's file\n")
    journal = tmp_path / "j.jsonl"
    (tmp_path / ".j.jsonl.reserve").symlink_to(victim)
    with pytest.raises(OSError):
        JournalWriter.open_new(journal, {})
    assert victim.read_text() == "root's file\n"
    assert not journal.exists()


def test_console_status_as_root_leaves_the_users_link_target_alone(tmp_path, homes):
    """The issue's reproduction, through the command itself."""
    import subprocess
    import sys

    target = roots_dir(tmp_path)
    runtime = tmp_path / "run-user-1000"
    runtime.mkdir(mode=0o700)
    (runtime / "rollout-console").symlink_to(target)
    os.chown(runtime, OTHER, OTHER)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "HOME": str(homes)}
    done = subprocess.run([sys.executable, "-m", "console", "status"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert "Traceback" not in done.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o755


def test_a_missing_base_is_made_and_one_another_user_could_swap_is_refused(tmp_path):
    made = first_own_tree([(tmp_path / "new" / "state", ("rollout-console",))])  # XDG_STATE_HOME not made yet
    assert made == tmp_path / "new/state/rollout-console" and stat.S_IMODE(made.stat().st_mode) == 0o700
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    (theirs / "mine").mkdir(mode=0o700)  # ours, but they may rename it away and put their own in its place
    os.chown(theirs, OTHER, OTHER)
    with pytest.raises(NotPrivate, match=f"{theirs} is owned by uid {OTHER}"):
        first_own_tree([(theirs / "mine", ("x",))])
    with pytest.raises(NotPrivate, match="not created"):
        first_own_tree([(theirs / "missing", ("x",))])
