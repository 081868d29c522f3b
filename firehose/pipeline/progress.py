"""Progress bars: one style for every long piece of work whose size is known.

``progress_bar`` is the one bar every command draws (demo put and drain, transform of a file, rebill,
export from S3): a tqdm bar on stderr with a description, a percentage, the count of the total, the
elapsed time, an ETA and a rate, redrawn in place at most every ``REFRESH_SECONDS``; nothing at all
when the stream is not a terminal (a log or CI keeps the summary, not hundreds of status lines).

``PutProgress`` is the demo's: records put into the stream, then, while the runtime drains, the records
the delivery streams have handled (delivered, dropped or failed: what the demo's table counts as
"handled", not the vendor CSV rows it shows below).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, TextIO

# How often a bar is redrawn (and the handled counts read while nothing is put, e.g. while draining).
REFRESH_SECONDS = 0.5


def progress_bar(
    stream: TextIO,
    *,
    desc: str,
    unit: str,
    total: int | float | None = None,
    bytes_: bool = False,
    enabled: bool = True,
) -> Any:
    """The project's progress bar: ``desc: 42%|████      | 420/1000 [00:01<00:01, 300 records/s]``.

    Drawn on ``stream`` only when it is a terminal and ``enabled``; ``bytes_`` shows sizes as kB/MB.
    """
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=bytes_,
        unit_divisor=1024 if bytes_ else 1000,
        file=stream,
        mininterval=REFRESH_SECONDS,
        dynamic_ncols=True,
        disable=not (enabled and stream.isatty()),
    )


# Kept for callers of the earlier name.
def status_bar(stream: TextIO, *, unit: str, total: int | None = None, desc: str | None = None) -> Any:
    return progress_bar(stream, desc=desc or "", unit=unit, total=total)


class PutProgress:
    """Records put (``put``, after each PutRecords, out of ``total`` when it is known) with, beside
    them, what each delivery stream has handled; then (``draining``) the records handled out of what
    the streams must handle, redrawn every ``REFRESH_SECONDS`` until the block ends."""

    def __init__(
        self,
        stream: TextIO,
        counts: Callable[[], Mapping[str, Mapping[str, int]]],
        labels: Mapping[str, str],
        total: int | None = None,
    ) -> None:
        self._stream = stream
        self._bar = progress_bar(stream, unit=" records", total=total, desc="put")
        self._drain: Any = None
        self._counts = counts
        self._labels = labels
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._refresh, name="demo-progress", daemon=True)

    def __enter__(self) -> PutProgress:
        if not self._bar.disable:
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        with self._lock:
            if self._drain is not None:
                self._drain.n = min(self._handled_total(), self._drain.total or 0)
                self._drain.set_postfix_str(self.handled(), refresh=False)
                self._drain.close()
            else:
                self._bar.set_postfix_str(self.handled(), refresh=False)
                self._bar.close()

    def put(self, records_put: int) -> None:
        self._bar.update(records_put - self._bar.n)

    def draining(self, records_put: int) -> None:
        """The put is over: show the records the delivery streams have handled out of what they must
        (``records_put`` for each stream) until the block ends."""
        with self._lock:
            enabled = not self._bar.disable  # (a closed bar is disabled)
            self._bar.total = records_put
            self._bar.set_postfix_str(self.handled(), refresh=False)
            self._bar.close()
            streams = max(1, len(self._counts()))
            self._drain = progress_bar(
                self._stream,
                unit=" records",
                total=records_put * streams,
                desc="drain",
                enabled=enabled,
            )

    def _handled_total(self) -> int:
        from firehose.runtime.delivery import processed

        return sum(processed(counts) for counts in self._counts().values())

    def handled(self) -> str:
        """``handled: lake N, raw N, vendor N`` (by the template's names, without DeliveryStream): the
        records each stream is done with, whatever became of them (a row, a drop, a failure)."""
        from firehose.runtime.delivery import processed

        parts = [
            f"{self._labels.get(name, name).removesuffix('DeliveryStream').lower()} {processed(counts)}"
            for name, counts in sorted(self._counts().items())
        ]
        return f"handled: {', '.join(parts)}"

    def _refresh(self) -> None:
        while not self._stop.wait(REFRESH_SECONDS):
            with self._lock:
                if self._drain is not None:
                    total = self._drain.total or 0
                    self._drain.update(min(self._handled_total(), total) - self._drain.n)
                    self._drain.set_postfix_str(self.handled())
                else:
                    self._bar.set_postfix_str(self.handled())
