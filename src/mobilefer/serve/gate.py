"""Bounded concurrent inference: a few slots, a bounded queue, 503 with Retry-After beyond it.

Every request that carries an image is *admitted* before its body is read, so the memory
held by waiting requests is bounded by (slots + queue) x the upload limit. Admitted requests
wait for a slot (an inference thread); one that waits past the timeout also gets 503.
"""
from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator


class Busy(Exception):
    """The service is at capacity; ``retry_after`` is an estimate in whole seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InferenceGate:
    def __init__(self, slots: int, queue: int, timeout_s: float) -> None:
        self.slots, self.capacity, self.timeout_s = slots, slots + queue, timeout_s
        self.admitted = 0
        self.running = 0
        self.served = 0
        self.rejected = 0
        self.mean_service_s = 0.05  # refined from measured inferences
        self._semaphore: asyncio.Semaphore | None = None

    def retry_after(self) -> int:
        return max(1, math.ceil(self.admitted * self.mean_service_s / self.slots))

    def _busy(self, why: str) -> Busy:
        self.rejected += 1
        return Busy(f"server busy: {why}; retry later", self.retry_after())

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Hold a place from reading the body to sending the answer, or raise Busy."""
        if self.admitted >= self.capacity:
            raise self._busy(f"{self.admitted} requests in progress, the limit is {self.capacity}")
        self.admitted += 1
        try:
            yield
        finally:
            self.admitted -= 1

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait (up to the timeout) for an inference slot."""
        if self._semaphore is None:  # created in the event loop that uses it
            self._semaphore = asyncio.Semaphore(self.slots)
        try:
            await asyncio.wait_for(self._semaphore.acquire(), self.timeout_s)
        except asyncio.TimeoutError:
            raise self._busy(f"waited {self.timeout_s:g} s for an inference slot") from None
        self.running += 1
        start = time.perf_counter()
        try:
            yield
        finally:
            self.running -= 1
            self._semaphore.release()
            self.served += 1
            self.mean_service_s += 0.1 * (time.perf_counter() - start - self.mean_service_s)

    def stats(self) -> dict[str, float | None]:
        """Current load; ``mean_inference_ms`` is None until an inference has been measured (the
        Retry-After estimate starts from a guess, which is not a measurement)."""
        return {"in_progress": self.admitted, "running": self.running, "capacity": self.capacity,
                "served": self.served, "rejected_busy": self.rejected,
                "mean_inference_ms": round(1000 * self.mean_service_s, 1) if self.served else None}
