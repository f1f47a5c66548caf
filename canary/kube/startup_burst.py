"""The start-up burst: first passes admitted a few at a time, and the heap settled as they drain.

At start-up each Canary's first pass begins at once and waits for the same few API worker
threads, each holding what it observed and decided meanwhile. Measured at a thousand Canaries
(``bench/scale.py``), that burst alone set the process's RSS for good: 206 MiB reached in the
first ten seconds and kept, against 172 MiB with 48 first passes admitted at a time.

What the start-up leaves is mostly what the process keeps for its life: the imported modules,
the caches' projections, a reconciler per Canary. CPython's full collections scan every tracked
object, and with that heap each took 200-600 ms, every 20 s at steady state and every 5 s while
Canaries initialise; the event loop stops meanwhile, so every tick due then was that late.
``gc.freeze`` moves what exists out of the collector's sight: later full collections scan only
what was made since. Objects frozen are still freed when their last reference goes; only a
reference cycle among them would never be, and the collection just before each freeze clears
the ones there are.

When the burst is over cannot be known (Canaries arrive from the watch over seconds, and the
first passes may drain several times before the last arrives), so the heap is settled each time
the first passes drain and the heap has grown by a quarter since it was last settled: a few
times during a start-up, then only if the cluster's Canaries grow that much.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import time
from collections.abc import AsyncIterator, Callable

import structlog

log = structlog.get_logger(__name__)

#: First passes in flight at once. A few times the API worker threads (six on two cores):
#: 16 gave 170 MiB and 152 s to initialise 1000 fresh Canaries, 48 gave 172 MiB and 122 s,
#: 128 gave 177 MiB and 114 s; unbounded, 206 MiB and about 90 s.
FIRST_PASS_CONCURRENCY = 48
#: Growth of the heap (allocated blocks) since it was last settled that has it settled again.
SETTLE_GROWTH = 1.25


def settle_heap() -> None:
    """Collect the garbage there is, then freeze the rest out of later full collections."""
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    log.info("heap settled", frozen_objects=gc.get_freeze_count(),
             took_ms=round((time.perf_counter() - started) * 1000))


class HeapSettler:
    """Settles the heap when called, if it has grown by ``growth`` since it was last settled
    (or since this was made): the rule above, apart from what measures and settles."""

    def __init__(self, growth: float = SETTLE_GROWTH, blocks: Callable[[], int] = sys.getallocatedblocks,
                 settle: Callable[[], None] = settle_heap) -> None:
        self._growth = growth
        self._blocks = blocks
        self._settle = settle
        self._settled_at = blocks()

    def __call__(self) -> None:
        if self._blocks() >= self._settled_at * self._growth:
            self._settle()
            self._settled_at = self._blocks()


def _nothing() -> None:
    pass


class StartupBurst:
    """Admits first passes ``limit`` at a time; ``on_drained`` runs each time none is in flight or
    waiting any more. The operator passes a :class:`HeapSettler`; the default does nothing, since
    freezing the heap of a process that hosts many registries (the tests) would keep every object
    of theirs."""

    def __init__(self, limit: int = FIRST_PASS_CONCURRENCY, on_drained: Callable[[], None] = _nothing) -> None:
        self._gate = asyncio.Semaphore(limit)
        self._entered = 0
        self._on_drained = on_drained

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        self._entered += 1
        try:
            async with self._gate:
                yield
        finally:
            self._entered -= 1
            if self._entered == 0:
                self._on_drained()


__all__ = ["FIRST_PASS_CONCURRENCY", "HeapSettler", "StartupBurst", "settle_heap"]
