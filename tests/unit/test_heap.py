import gc

import trio

from campaignsvc import heap


def test_frozen_survivors__freezes_what_survives_each_full_collection_and_thaws_on_exit():
    gc.unfreeze()
    with heap.frozen_survivors():
        at_entry = gc.get_freeze_count()
        assert at_entry > 0
        survivors = [[i] for i in range(1000)]  # new, tracked, alive
        gc.collect()
        assert gc.get_freeze_count() >= at_entry + len(survivors)
        garbage = []
        garbage.append(garbage)  # a cycle made after the freeze is still found by the collector
        del garbage
        assert gc.collect() >= 1
    assert gc.get_freeze_count() == 0
    assert heap._freeze_survivors not in gc.callbacks


async def test_thaw_periodically__hands_frozen_objects_back():
    gc.collect()
    gc.freeze()
    assert gc.get_freeze_count() > 0
    with trio.move_on_after(0.5):
        await heap.thaw_periodically(every_s=0.05)
    assert gc.get_freeze_count() == 0
