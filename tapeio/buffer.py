"""A bounded memory buffer between the producer (file reading, hashing, tar
framing) and the drive writer, so the drive keeps streaming.

The original pytp put ``mbuffer`` in this place.  A tape drive that runs dry
stops, rewinds a little and restarts ("shoe-shining"), so the writer thread
starts only once the buffer is filled to ``start_percent`` (mbuffer ``-P``) and
counts every time it had to wait for data (an underrun).  The fill level is
observable through ``stats()`` for progress output.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .errors import BufferAborted


@dataclass(frozen=True)
class BufferStats:
    capacity: int
    fill: int
    high_water: int
    bytes_written: int
    underruns: int
    write_seconds: float

    @property
    def fill_percent(self) -> float:
        return 100.0 * self.fill / self.capacity if self.capacity else 0.0


class DriveWriter:
    """Writes chunks of whole blocks to a drive from a background thread.

    :param write: what writes a chunk to tape: ``drive.write``, or a sink that
        also moves on to the next tape at end of medium.
    :param capacity: buffer size in bytes; ``put`` blocks while it is full.
    :param start_percent: the writer starts once the buffer is this full, or
        when the producer closes the stream (mbuffer ``-P``).
    :param written: called with each chunk once it is on the drive (the
        producer's ``blockio.ChunkPool`` takes it back to fill again).
    """

    def __init__(
        self,
        write: Callable[[bytes], None],
        capacity: int,
        start_percent: int = 20,
        name: str = "",
        written: Callable[[bytes], None] | None = None,
    ) -> None:
        if capacity <= 0:
            raise ValueError("buffer capacity must be positive")
        self._write = write
        self._written_hook = written
        self.capacity = capacity
        self._start_at = capacity * max(0, min(start_percent, 100)) // 100
        self._chunks: deque[bytes] = deque()
        self._fill = 0
        self._high_water = 0
        self._written = 0
        self._underruns = 0
        self._write_seconds = 0.0
        self._closed = False
        self._started = False
        self._producer_waiting = False
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"pytp-writer-{name}", daemon=True)
        self._thread.start()

    # producer side -------------------------------------------------------
    def put(self, chunk: bytes) -> None:
        """Queue ``chunk`` for the drive; blocks while the buffer is full.

        :raises BufferAborted: the writer failed; its error is the cause.
        """
        with self._cond:
            while self._fill + len(chunk) > self.capacity and self._fill and self._error is None:
                # A full buffer must start the writer even below the start
                # level (a chunk larger than the room left), or both would wait.
                self._producer_waiting = True
                self._cond.notify_all()
                self._cond.wait()
            self._producer_waiting = False
            self._raise_if_failed()
            self._chunks.append(chunk)
            self._fill += len(chunk)
            self._high_water = max(self._high_water, self._fill)
            self._cond.notify_all()

    def close(self) -> None:
        """Wait until every queued byte is on the drive; re-raise a writer error."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()
        self._raise_if_failed()

    def abort(self) -> None:
        """Stop writing as soon as possible and drop what is queued."""
        with self._cond:
            self._chunks.clear()
            self._fill = 0
            self._closed = True
            if self._error is None:
                self._error = BufferAborted("transfer aborted")
            self._cond.notify_all()
        self._thread.join()

    def stats(self) -> BufferStats:
        with self._cond:
            return BufferStats(
                capacity=self.capacity,
                fill=self._fill,
                high_water=self._high_water,
                bytes_written=self._written,
                underruns=self._underruns,
                write_seconds=self._write_seconds,
            )

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            if isinstance(self._error, BufferAborted):
                raise self._error
            raise BufferAborted(f"the drive writer failed: {self._error}") from self._error

    # writer side ---------------------------------------------------------
    def _next_chunk(self) -> bytes | None:
        with self._cond:
            while True:
                if self._error is not None:
                    return None
                ready = self._closed or self._started or self._producer_waiting or self._fill >= self._start_at
                if self._chunks and ready:
                    self._started = True
                    chunk = self._chunks.popleft()
                    return chunk
                if self._closed and not self._chunks:
                    return None
                if self._started:
                    self._underruns += 1
                    # Once the buffer ran dry, wait for it to refill to the
                    # start level again instead of writing block by block.
                    self._started = False
                self._cond.wait()

    def _run(self) -> None:
        while (chunk := self._next_chunk()) is not None:
            began = time.perf_counter()
            try:
                self._write(chunk)
            except BaseException as err:  # noqa: BLE001 - handed to the producer
                with self._cond:
                    self._error = err
                    self._chunks.clear()
                    self._fill = 0
                    self._cond.notify_all()
                return
            with self._cond:
                self._write_seconds += time.perf_counter() - began
                self._written += len(chunk)
                self._fill -= len(chunk)
                self._cond.notify_all()
            if self._written_hook is not None:
                self._written_hook(chunk)
