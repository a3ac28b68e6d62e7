"""Shared input validators (inventory/validate.py)."""
import importlib.util
from pathlib import Path

import pytest

from inventory.validate import RELEASE_VERSION, did_you_mean

INSTALL_RELEASE = Path(__file__).resolve().parents[1] / "sandbox" / "install-release.py"


def test_did_you_mean_names_the_closest_choice_or_lists_them():
    assert did_you_mean("rollin", ["canary", "rolling"]) == '; did you mean "rolling"?'
    assert did_you_mean("zzz", ["b", "a", "b"]) == "; expected one of: a, b"
    assert did_you_mean("zzz", []) == ""


@pytest.mark.parametrize("version, ok", [("2.0.0", True), ("2.1.0-bad", True), ("1.0+build.7", True),
                                         ("-rf", False), ("../x", False), ("a b", False), ("", False),
                                         ("v" * 64, True), ("v" * 65, False)])
def test_release_version_pattern(version, ok):
    assert bool(RELEASE_VERSION.match(version)) is ok


def test_sandbox_installer_keeps_the_same_version_pattern():
    """install-release runs on sandbox hosts without this package, so it
    carries its own copy of the pattern: the two must not drift."""
    spec = importlib.util.spec_from_file_location("install_release", INSTALL_RELEASE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.VERSION_RE.pattern == RELEASE_VERSION.pattern
