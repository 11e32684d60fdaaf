"""An asyncio micro-batcher: concurrent requests share one model call.

Each :meth:`MicroBatcher.submit` hands in a *group* of items (one listing for ``/v1/score``, up to 64 for
``/v1/score_batch``). A single consumer task waits until ``max_items`` items are queued or ``max_wait_ms`` passed
since the first one arrived, runs the batch function on the concatenated items in a worker thread (so the event loop
keeps accepting requests), and hands each group its own slice of the results, in order. Groups are never split; a
group larger than ``max_items`` runs as a batch of its own. While a batch runs, new groups queue up and form the next
batch, so batches grow with load instead of waiting longer.

A batch function that raises fails every group of that batch (and only that batch).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["BatchConfig", "BatcherClosed", "MicroBatcher"]

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class BatchConfig:
    """How long and how much the batcher collects before calling the batch function."""

    max_items: int = 32  # items (listings) per call; one larger group still runs, alone
    max_wait_ms: float = 5.0  # collection window, counted from the first queued group

    def __post_init__(self) -> None:
        if self.max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {self.max_items}")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")


class BatcherClosed(RuntimeError):
    """The batcher was closed before a submitted group ran."""


@dataclass
class _Group(Generic[T, R]):
    items: list[T]
    future: asyncio.Future[list[R]] = field(repr=False)


class MicroBatcher(Generic[T, R]):
    """Merges concurrently submitted groups of items into batched calls of ``fn``.

    Args:
        fn: Called with a list of items, returns one result per item in the same order. Runs in ``executor``.
        config: Collection limits.
        executor: Where ``fn`` runs; default a private single-thread pool (one batch at a time, which is what a
            CPU-bound model wants). Closed by :meth:`close` only when it is the private one.
        on_batch: Called (in the worker thread, after ``fn`` succeeded) with the number of items and groups of
            each batch; for metrics.
    """

    def __init__(
        self,
        fn: Callable[[list[T]], Sequence[R]],
        config: BatchConfig | None = None,
        executor: concurrent.futures.Executor | None = None,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> None:
        self.fn = fn
        self.config = config or BatchConfig()
        self._own_executor = executor is None
        self._executor = executor or concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="batcher")
        self._on_batch = on_batch
        self._pending: deque[_Group[T, R]] = deque()
        self._n_pending = 0
        self._arrived: asyncio.Event | None = None
        self._full: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._running: list[_Group[T, R]] = []
        self._closed = False

    @property
    def pending_items(self) -> int:
        """Items queued and not yet handed to ``fn``."""
        return self._n_pending

    async def submit(self, items: Sequence[T]) -> list[R]:
        """Queue a group and wait for its results (same length and order as ``items``).

        Raises:
            BatcherClosed: The batcher is closed.
            Exception: Whatever ``fn`` raised for the batch this group ran in.
        """
        if self._closed:
            raise BatcherClosed("the batcher is closed")
        items = list(items)
        if not items:
            return []
        loop = asyncio.get_running_loop()
        self._ensure_started(loop)
        assert self._arrived is not None and self._full is not None
        group: _Group[T, R] = _Group(items, loop.create_future())
        self._pending.append(group)
        self._n_pending += len(items)
        self._arrived.set()
        if self._n_pending >= self.config.max_items:
            self._full.set()
        return await group.future

    def _ensure_started(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._task is None or self._task.done():
            self._arrived = asyncio.Event()
            self._full = asyncio.Event()
            self._task = loop.create_task(self._consume(), name="micro-batcher")

    async def _consume(self) -> None:
        """The single consumer: collect a batch, run it, repeat."""
        assert self._arrived is not None and self._full is not None
        while True:
            await self._arrived.wait()
            if self._n_pending < self.config.max_items and self.config.max_wait_ms > 0:
                try:
                    await asyncio.wait_for(self._full.wait(), self.config.max_wait_ms / 1000.0)
                except TimeoutError:
                    pass
            batch = self._take()
            if batch:
                self._running = batch
                try:
                    await self._run(batch)
                finally:
                    self._running = []

    def _take(self) -> list[_Group[T, R]]:
        """Pop whole groups, oldest first, up to ``max_items`` items (at least one group)."""
        assert self._arrived is not None and self._full is not None
        batch: list[_Group[T, R]] = []
        n = 0
        while self._pending:
            group = self._pending[0]
            if batch and n + len(group.items) > self.config.max_items:
                break
            self._pending.popleft()
            self._n_pending -= len(group.items)
            if group.future.done():  # the caller went away (cancelled): skip its work
                continue
            batch.append(group)
            n += len(group.items)
        if not self._pending:
            self._arrived.clear()
        if self._n_pending < self.config.max_items:
            self._full.clear()
        return batch

    async def _run(self, batch: list[_Group[T, R]]) -> None:
        items = [item for group in batch for item in group.items]
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self._executor, self._call, items, len(batch))
        except Exception as exc:  # fails only this batch's groups; the consumer keeps going
            log.warning("batch of %d item(s) in %d group(s) failed: %s: %s", len(items), len(batch),
                        type(exc).__name__, exc)
            for group in batch:
                if not group.future.done():
                    group.future.set_exception(exc)
            return
        start = 0
        for group in batch:
            end = start + len(group.items)
            if not group.future.done():
                group.future.set_result(results[start:end])
            start = end

    def _call(self, items: list[T], n_groups: int) -> list[R]:
        results = list(self.fn(items))
        if len(results) != len(items):
            raise RuntimeError(f"batch function returned {len(results)} results for {len(items)} items")
        if self._on_batch is not None:
            self._on_batch(len(items), n_groups)
        return results

    async def close(self) -> None:
        """Stop the consumer and fail queued groups with :class:`BatcherClosed`; idempotent."""
        self._closed = True
        running = list(self._running)  # the consumer forgets its batch when cancelled
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for group in [*running, *self._pending]:
            if not group.future.done():
                group.future.set_exception(BatcherClosed("the batcher closed before this request finished"))
        self._pending.clear()
        self._running = []
        self._n_pending = 0
        if self._own_executor:
            self._executor.shutdown(wait=False, cancel_futures=True)
