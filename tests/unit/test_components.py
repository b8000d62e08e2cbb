"""freeze_heap: what is alive is moved out of the collector's reach, garbage is collected first."""

from __future__ import annotations

import gc

from shoal import components


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_freeze_heap_collects_then_freezes() -> None:
    Cycle()  # garbage (a reference cycle): collected, not frozen
    alive = [Cycle()]
    try:
        components.freeze_heap()
        assert gc.get_freeze_count() > 0
        assert not [o for o in gc.get_objects() if type(o) is Cycle]  # frozen objects are not listed
        assert alive[0].me is alive[0]
    finally:
        gc.unfreeze()
    assert len([o for o in gc.get_objects() if type(o) is Cycle]) == 1  # only the live one is left
