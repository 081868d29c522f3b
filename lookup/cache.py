"""A small TTL cache per warm Lambda container: repeated lookups stay off DynamoDB.

Misses are cached too (``None``), so a caller redialling an unknown extension does not hit the table
again; a new directory entry becomes visible within one TTL. A TTL of 0 disables the cache.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_ABSENT = object()


class TTLCache(Generic[K, V]):
    """Entries expire ``ttl_seconds`` after they were stored; the oldest are evicted past ``max_entries``."""

    def __init__(
        self,
        ttl_seconds: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_seconds < 0:
            raise ValueError("ttl_seconds must not be negative")
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self._ttl > 0

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, key: K) -> tuple[bool, V | None]:
        """``(True, value)`` for a live entry (the value may be a cached ``None``), else ``(False, None)``."""
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        expires, value = entry
        if self._clock() >= expires:
            del self._entries[key]
            return False, None
        return True, value

    def put(self, key: K, value: V) -> None:
        if not self.enabled:
            return
        self._entries[key] = (self._clock() + self._ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
