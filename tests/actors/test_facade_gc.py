"""The engine exempts its start-up objects from garbage collection, and gives them back."""

from __future__ import annotations

import gc
from pathlib import Path

from actors.engine import create_execution_engine
from actors.facade import ExecutionFacade
from terminals.simulated import SimulatedTerminal
from tests.actors.conftest import fast_settings, rpm


def _start(tmp_path: Path, *, freeze: bool) -> ExecutionFacade:
    gc.unfreeze()  # whatever an earlier test left
    return create_execution_engine(
        terminal=SimulatedTerminal(seed=1),
        database_url=f"sqlite:///{tmp_path / 'gc.db'}",
        settings=fast_settings(gc_freeze_on_start=freeze),
    )


def test_start_up_objects_are_frozen_while_the_engine_runs(tmp_path: Path) -> None:
    engine = _start(tmp_path, freeze=True)
    try:
        assert gc.get_freeze_count() > 1000  # modules, the schema, the actors: start-up's
        assert engine.execute(rpm()).status.is_final
    finally:
        engine.stop()
    assert gc.get_freeze_count() == 0


def test_the_freeze_can_be_turned_off(tmp_path: Path) -> None:
    engine = _start(tmp_path, freeze=False)
    try:
        assert gc.get_freeze_count() == 0
    finally:
        engine.stop()
