import asyncio
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.pop("NO_COLOR", None)  # NO_COLOR changes every snapshot


@pytest.fixture
def make_session(tmp_path, monkeypatch):
    """A real Session on the embedded SIMULATED fleet; engines left running
    at the end of a test are aborted and awaited."""
    from console.session import Session, load_inputs

    monkeypatch.chdir(ROOT)
    made = []

    def make(plan="examples/canary.yaml", version=None, time_scale=50.0, inventory=None):
        inputs = load_inputs(plan, inventory, version)
        session = Session(inputs, argv=["console", "--plan", plan], record=str(tmp_path / f"j{len(made)}.jsonl"),
                          time_scale=time_scale, interactive=True)
        made.append(session)
        return session
    return make


async def stop_engine(app):
    """Leave no engine task behind: abort and await it."""
    from strategies.control import Command

    task = app.engine_task
    if task is not None and not task.done():
        app.engine.command(Command.ABORT, "test teardown")  # on the engine's loop, in its thread
        await asyncio.wait_for(task, 30)
