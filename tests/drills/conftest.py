"""The drills' tests share the actor tests' clean teardown."""

from tests.actors.conftest import _stop_all_actors

__all__ = ["_stop_all_actors"]
