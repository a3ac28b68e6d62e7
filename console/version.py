"""The tool's own version (`console version`, `-V`), from the installed
distribution's metadata; "0+unknown" when run from a source tree that was
never installed."""
from importlib.metadata import PackageNotFoundError, version as dist_version


def tool_version() -> str:
    try:
        return dist_version("rollout-console")
    except PackageNotFoundError:
        return "0+unknown"
