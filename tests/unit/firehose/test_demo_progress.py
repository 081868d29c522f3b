"""The demo's progress: a tqdm status line of records put and handled on a terminal, nothing elsewhere."""

from __future__ import annotations

import io

from firehose.pipeline.progress import PutProgress

LABELS = {"ctr-billing-raw": "RawDeliveryStream", "ctr-billing-vendor": "VendorDeliveryStream"}


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _counts() -> dict[str, dict[str, int]]:
    return {
        "ctr-billing-vendor": {"delivered": 3, "dropped": 2, "processing-failed": 1, "records_read": 9},
        "ctr-billing-raw": {"delivered": 6, "objects_written": 2},
    }


def test_on_a_terminal_the_records_put_and_each_streams_finished_records_are_shown() -> None:
    # GIVEN a terminal  WHEN 1,000 records are put in two batches
    terminal = Terminal()
    with PutProgress(terminal, _counts, LABELS) as progress:
        progress.put(500)
        progress.put(1000)
    # THEN the status line ends with the total put and, per stream, what it is done with (read is not done)
    shown = terminal.getvalue()
    last = shown.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("put: 1000 records")
    assert last.endswith("handled: raw 6, vendor 6]")


def test_off_a_terminal_nothing_is_drawn() -> None:
    # GIVEN stderr redirected to a file or a pipe
    log = io.StringIO()
    with PutProgress(log, _counts, LABELS) as progress:
        progress.put(500)
    # THEN the log holds no status lines
    assert log.getvalue() == ""
