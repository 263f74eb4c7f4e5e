"""A clock tests set by hand: `clock.now += 61` moves time for whatever was given the clock."""

from __future__ import annotations


class Clock:
    def __init__(self, now: float = 1_800_000_000) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
