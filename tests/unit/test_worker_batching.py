"""The worker's batch sizing and turn decisions, without a store: pure arithmetic over counts."""

from __future__ import annotations

import pytest

from workclaim.worker._batching import MAX_LINGER, BatchSizer, Turn


def test_the_batch_doubles_while_full_batches_come_and_stops_at_max_batch() -> None:
    sizer = BatchSizer(max_batch=10)
    sizes = []
    for _ in range(5):
        sizer.adapt(asked=sizer.size, got=sizer.size)
        sizes.append(sizer.size)
    assert sizes == [2, 4, 8, 10, 10]


def test_the_batch_shrinks_to_what_the_queue_had_and_never_below_one() -> None:
    sizer = BatchSizer(max_batch=32)
    sizer.size = 16
    assert sizer.next_size(asked=16, got=5) == 5
    assert sizer.next_size(asked=16, got=0) == 1
    assert sizer.size == 16  # next_size is pure: only adapt() changes the size
    sizer.adapt(asked=16, got=0)
    assert sizer.size == 1


def test_a_claim_that_asked_for_fewer_than_the_batch_still_counts_as_full() -> None:
    """Capacity, not the queue, limited the ask: the queue may hold more, so keep growing."""
    sizer = BatchSizer(max_batch=32)
    sizer.size = 8
    assert sizer.next_size(asked=3, got=3) == 16


def test_the_linger_is_half_the_first_round_trip_then_a_moving_average_capped() -> None:
    sizer = BatchSizer(max_batch=8)
    assert sizer.linger < 0  # not timed yet: a turn does not linger
    sizer.timed(0.004)
    assert sizer.linger == pytest.approx(0.002)
    sizer.timed(0.014)  # half is 0.007: 0.8 * 0.002 + 0.2 * 0.007
    assert sizer.linger == pytest.approx(0.003)
    assert sizer.next_linger(10.0) == MAX_LINGER
    assert sizer.linger == pytest.approx(0.003)  # next_linger is pure


def test_linger_left_counts_from_when_the_turn_started_lingering() -> None:
    sizer = BatchSizer(max_batch=8)
    assert sizer.linger_left(since=5.0, now=5.0) == 0.0  # untimed: no lingering at all
    sizer.timed(0.01)
    assert sizer.linger_left(since=5.0, now=5.002) == pytest.approx(0.003)
    assert sizer.linger_left(since=5.0, now=5.01) < 0


@pytest.mark.parametrize(
    ("free", "finished", "running", "dry", "expected"),
    [
        (0, 0, 4, False, Turn.BLOCKED),  # every thread busy, nothing to report
        (0, 0, 4, True, Turn.BLOCKED),
        (2, 0, 2, True, Turn.GO),  # dry: a long poll needs no company
        (4, 1, 1, True, Turn.GO),
        (4, 0, 0, False, Turn.GO),  # a full batch of capacity is free
        (3, 1, 2, False, Turn.LINGER),  # one finished, another still running: wait for it
        (3, 2, 2, False, Turn.GO),  # every held lease has finished
        (2, 1, 3, True, Turn.LINGER),  # something to report: dry does not skip the wait
    ],
)
def test_a_turn_goes_when_a_batch_is_free_or_nothing_else_runs(
    free: int, finished: int, running: int, dry: bool, expected: Turn
) -> None:
    sizer = BatchSizer(max_batch=8)
    sizer.size = 4
    assert sizer.turn(free=free, finished=finished, running=running, dry=dry) is expected
