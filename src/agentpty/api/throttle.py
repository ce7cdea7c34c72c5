"""Failed-authentication throttle: a token bucket per client address."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["FailureThrottle"]


class FailureThrottle:
    """Allows ``rate`` failed authentications a second per address, after a burst.

    Each address has a bucket of ``burst`` tokens refilled at ``rate`` a
    second; a failure takes one. While the bucket is empty every request from
    the address that needs authentication is refused without checking its
    credentials: answering a correct guess would defeat the limit. A client
    with the right token is never charged, so it only waits while someone at
    its own address keeps guessing.

    At most ``max_addresses`` buckets are kept (least recently failed dropped
    first), so a spray of source addresses cannot grow memory without bound.
    """

    def __init__(
        self,
        rate: float,
        burst: int | None = None,
        *,
        max_addresses: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = float(burst if burst is not None else max(1, math.ceil(2 * rate)))
        self.max_addresses = max_addresses
        self._clock = clock
        # address -> (tokens, time of the last update)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _level(self, address: str, now: float) -> float:
        tokens, then = self._buckets.get(address, (self.burst, now))
        return min(self.burst, tokens + (now - then) * self.rate)

    def retry_after(self, address: str) -> float:
        """0 if ``address`` may try to authenticate now, else seconds until it may."""
        if address not in self._buckets:
            return 0.0
        level = self._level(address, self._clock())
        return 0.0 if level >= 1 else (1 - level) / self.rate

    def failed(self, address: str) -> None:
        """Charge one failed authentication to ``address``."""
        now = self._clock()
        level = self._level(address, now)
        self._buckets[address] = (max(0.0, level - 1), now)
        self._buckets.move_to_end(address)
        while len(self._buckets) > self.max_addresses:
            self._buckets.popitem(last=False)
