import gc

import trio

from campaignsvc import heap


def test_frozen_survivors__freezes_what_survives_each_collection_of_old_generations_and_thaws_on_exit():
    gc.unfreeze()
    with heap.frozen_survivors():
        at_entry = gc.get_freeze_count()
        assert at_entry > 0
        survivors = [[i] for i in range(1000)]  # new, tracked, alive
        gc.collect()
        assert gc.get_freeze_count() >= at_entry + len(survivors)
        younger = [[i] for i in range(1000)]
        before = gc.get_freeze_count()
        gc.collect(1)  # a collection of the younger generations freezes its survivors too
        assert gc.get_freeze_count() >= before + len(younger)
        youngest = [[i] for i in range(1000)]
        before = gc.get_freeze_count()
        gc.collect(0)  # the youngest alone does not
        assert gc.get_freeze_count() == before and youngest
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
