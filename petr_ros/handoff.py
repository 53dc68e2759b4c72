"""`LatestSlot`: a one-item hand-off between a producer (the ROS image callback) and a consumer (the worker).

A newer item replaces a pending one (the producer learns it dropped one, to count it), so the consumer always
takes the freshest item and memory stays bounded however fast items arrive. Pure Python (no ROS).
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """put() replaces what is pending (returns True when it dropped an older item); get() waits for an item."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._closed = False

    def put(self, item: T) -> bool:
        """Offer `item`; True when an older pending item was replaced (dropped). Ignored once closed."""
        with self._cond:
            if self._closed:
                return False
            dropped = self._item is not None
            self._item = item
            self._cond.notify()
            return dropped

    def get(self, timeout: float) -> T | None:
        """The pending item (the slot is then empty), waiting up to `timeout` seconds; None when nothing came
        or the slot is closed."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Drop what is pending and wake every waiter; later puts are ignored."""
        with self._cond:
            self._closed = True
            self._item = None
            self._cond.notify_all()
