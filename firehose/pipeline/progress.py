"""What a demo shows while it runs: the records put and, per delivery stream, the records it is done with.

A tqdm status line on stderr, in the style of ``ctr-billing transform``'s, redrawn in place; nothing at
all when stderr is not a terminal (a log or CI keeps the summary, not hundreds of status lines).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from firehose.runtime.delivery import processed

# How often the delivered counts are redrawn while nothing is put (e.g. while the runtime drains).
REFRESH_SECONDS = 0.5


def status_bar(stream: TextIO, *, unit: str, total: int | None = None, desc: str | None = None) -> Any:
    """A tqdm bar on ``stream``, disabled unless it is a terminal."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=stream,
        mininterval=REFRESH_SECONDS,
        disable=not stream.isatty(),
    )


class PutProgress:
    """Records put (``put``, after each PutRecords) and, beside them, what each delivery stream has
    finished, redrawn every ``REFRESH_SECONDS`` until the block ends."""

    def __init__(
        self,
        stream: TextIO,
        counts: Callable[[], Mapping[str, Mapping[str, int]]],
        labels: Mapping[str, str],
        total: int | None = None,
    ) -> None:
        self._bar = status_bar(stream, unit=" records", total=total, desc="put")
        self._counts = counts
        self._labels = labels
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._refresh, name="demo-progress", daemon=True)

    def __enter__(self) -> PutProgress:
        if not self._bar.disable:
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._bar.set_postfix_str(self.delivered(), refresh=False)
        self._bar.close()

    def put(self, records_put: int) -> None:
        self._bar.update(records_put - self._bar.n)

    def delivered(self) -> str:
        """``delivered: lake N, raw N, vendor N`` (by the template's names, without DeliveryStream)."""
        parts = [
            f"{self._labels.get(name, name).removesuffix('DeliveryStream').lower()} {processed(counts)}"
            for name, counts in sorted(self._counts().items())
        ]
        return f"delivered: {', '.join(parts)}"

    def _refresh(self) -> None:
        while not self._stop.wait(REFRESH_SECONDS):
            self._bar.set_postfix_str(self.delivered())
