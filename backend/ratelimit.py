"""Token buckets keyed by terminal or client address: a burst, then a steady rate."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable


class TokenBuckets:
    """`burst` requests at once, then one per `interval` seconds, per key.

    Memory is bounded: at most `max_keys` keys are remembered (the least recently seen goes first; a key that
    was forgotten starts again with a full bucket, so the bound only matters under a flood of distinct keys).
    """

    def __init__(self, burst: int, interval: float, clock: Callable[[], float], max_keys: int = 10_000) -> None:
        if burst < 1 or interval <= 0:
            raise ValueError("burst must be >= 1 and interval > 0")
        self.burst, self.interval, self.clock, self.max_keys = burst, interval, clock, max_keys
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def take(self, key: str) -> int | None:
        """None if the request may go ahead (a token is spent), else the whole seconds to wait (>= 1)."""
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.pop(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + max(0.0, now - at) / self.interval)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                wait = None
            else:
                self._buckets[key] = (tokens, now)
                wait = max(1, math.ceil((1.0 - tokens) * self.interval))
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        return wait
