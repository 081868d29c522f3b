"""The shared backoff: exponential ceilings up to a cap, full jitter below them."""

from __future__ import annotations

import random

import pytest

from transform.core.backoff import Backoff


@pytest.mark.parametrize(
    ("attempt", "ceiling"), [(0, 0.05), (1, 0.1), (3, 0.4), (5, 1.6), (6, 2.0), (10_000, 2.0)]
)
def test_ceilings_double_up_to_the_cap(attempt: int, ceiling: float) -> None:
    assert Backoff().ceiling(attempt) == pytest.approx(ceiling)


def test_full_jitter_stays_within_the_ceiling_and_spreads() -> None:
    # GIVEN a seeded backoff  WHEN many pauses are drawn for one attempt
    backoff = Backoff(random=random.Random(7))
    pauses = [backoff.pause(4) for _ in range(1_000)]
    # THEN each is within [0, ceiling] and they are spread over it, not bunched at one value
    assert all(0 <= pause <= 0.8 for pause in pauses)
    assert min(pauses) < 0.1 and max(pauses) > 0.7


def test_without_jitter_the_pause_is_the_ceiling() -> None:
    backoff = Backoff(base_seconds=0.5, cap_seconds=5.0, jitter=False)
    assert [backoff.pause(attempt) for attempt in range(5)] == [0.5, 1.0, 2.0, 4.0, 5.0]
