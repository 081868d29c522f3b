"""The billing report's data and page: charts per section, no patient phone number anywhere."""

from __future__ import annotations

import gzip
import json
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from firehose.offline.report import busiest_day, gather, render_html, write_report
from transform.core.columns import COLUMNS, arrow_type

DAY = date(2026, 11, 3)
PHONES = ("+12025550143", "+14155550199", "+12125550123")


def _ctr(number: int, phone: str, channel: str = "VOICE", connected: bool = True) -> dict[str, object]:
    ctr: dict[str, object] = {
        "ContactId": f"c-{number}",
        "Channel": channel,
        "InitiationMethod": "INBOUND",
        "InitiationTimestamp": f"2026-11-03T1{number % 10}:00:00Z",
        "DisconnectTimestamp": f"2026-11-03T1{number % 10}:20:00Z",
        "LastUpdateTimestamp": f"2026-11-03T1{number % 10}:21:00Z",
        "CustomerEndpoint": {"Type": "TELEPHONE_NUMBER", "Address": phone},
        "Attributes": {"extensionNumber": f"10{number % 3}"},
    }
    if connected:
        ctr["Agent"] = {
            "ARN": "arn:aws:connect:us-east-1:1:instance/i/agent/a-1",
            "ConnectedToAgentTimestamp": f"2026-11-03T1{number % 10}:01:00Z",
            "CustomerHoldDuration": 45 * number,
        }
    return ctr


def make_folders(root: Path) -> Path:
    """A demo-like folder: raw archive, vendor CSV and lake, every row carrying a planted phone number."""
    ctrs = [_ctr(n, PHONES[n % 3]) for n in range(6)]
    ctrs += [_ctr(10, PHONES[0], channel="CHAT"), _ctr(11, PHONES[1], connected=False)]
    raw = root / "raw" / "ctr" / "2026" / "11" / "03" / "10"
    raw.mkdir(parents=True)
    with gzip.open(raw / "raw-1.gz", "wt") as stream:
        stream.writelines(json.dumps(ctr) + "\n" for ctr in ctrs)
    vendor = root / "vendor" / "billing" / "2026" / "11" / "03" / "10"
    vendor.mkdir(parents=True)
    (vendor / "vendor-1.csv").write_text(
        "".join(f"INBOUND,2026-11-03T1{n}:00:00Z,1140,{PHONES[n % 3]},10{n % 3},{45 * n}\n" for n in range(6))
    )
    rows = []
    for n in range(6):
        row: dict[str, object] = {column.name: None for column in COLUMNS}
        row.update(
            call_type="INBOUND",
            initiation_timestamp=f"2026-11-03 1{n}:00:00",
            duration_seconds=1140,
            patient_phone=PHONES[n % 3],
            provider_extension=f"10{n % 3}",
            hold_seconds=45 * n,
            contact_id=f"c-{n}",
            last_update_timestamp=f"2026-11-03 1{n}:21:00",
        )
        rows.append(row)
    schema = pa.schema([(column.name, arrow_type(column.type)) for column in COLUMNS])
    table = pa.Table.from_pylist(
        [
            {k: (_ts(v) if isinstance(v, str) and k.endswith("timestamp") else v) for k, v in r.items()}
            for r in rows
        ],
        schema=schema,
    )
    partition = root / "lake" / "billing_rows" / "year=2026" / "month=11" / "day=03"
    partition.mkdir(parents=True)
    pq.write_table(table, partition / "lake-1.parquet")
    return root


def _ts(text: str) -> object:
    from datetime import datetime

    return datetime.fromisoformat(text)


def test_gather_counts_outcomes_minutes_hours_and_reconciliation(tmp_path: Path) -> None:
    root = make_folders(tmp_path)
    data = gather(DAY, root / "lake", raw=root / "raw", vendor=root / "vendor", settled=root / "settled")
    assert data.outcomes == {
        "BillableContact": 6,
        "NotBillable: ChannelNotBillable": 1,
        "NotBillable: NotConnectedToAgent": 1,
    }
    assert dict(data.minutes_by_provider) == {"100": 38.0, "101": 38.0, "102": 38.0}
    assert sum(calls for _, _, calls in data.calls_by_hour) == 6
    assert sum(calls for _, calls in data.hold_bins) == 6
    assert data.reconciliation == {
        "lake_latest_rows": 6,
        "lake_rows_all_versions": 6,
        "vendor_streamed_rows": 6,
        "settled_file_rows": None,
    }
    assert busiest_day(root / "lake") == DAY


def test_the_page_has_every_chart_inline_and_no_phone_number(tmp_path: Path) -> None:
    root = make_folders(tmp_path)
    out = tmp_path / "report.html"
    write_report(DAY, root / "lake", out, raw=root / "raw", vendor=root / "vendor")
    page = out.read_text(encoding="utf-8")
    for anchor in (
        "contacts-by-outcome",
        "minutes-by-provider",
        "calls-by-hour",
        "hold-time",
        "reconciliation",
    ):
        assert f'id="chart-{anchor}"' in page, anchor
    assert "<script src=" not in page and "<link " not in page  # nothing loaded from elsewhere
    assert page.count("plotly.js v") >= 1  # the library inlined
    for phone in PHONES:
        assert phone not in page and phone.lstrip("+") not in page, phone


def test_an_empty_day_renders_without_charts(tmp_path: Path) -> None:
    root = make_folders(tmp_path)
    data = gather(date(2026, 11, 9), root / "lake")
    assert data.reconciliation["lake_latest_rows"] == 0
    assert "no data for this day" in render_html(data)


def test_a_settled_file_sets_the_window_and_its_rows_are_counted(tmp_path: Path) -> None:
    root = make_folders(tmp_path)
    settled = root / "settled"
    settled.mkdir()
    # A billing day in New York: 04:00Z to 04:00Z the next day; contacts at 10:00Z-15:00Z fall in it.
    (settled / "billing-2026-11-03.manifest.json").write_text(
        json.dumps(
            {
                "date": "2026-11-03",
                "rows": 2,
                "timezone": "America/New_York",
                "window_start_utc": "2026-11-03 05:00:00",
                "window_end_utc": "2026-11-04 05:00:00",
            }
        )
    )
    (settled / "billing-2026-11-03.csv").write_text(
        "call_type,initiation_timestamp\nINBOUND,2026-11-03T10:00:00Z\nINBOUND,2026-11-03T11:00:00Z\n"
    )
    data = gather(DAY, root / "lake", settled=settled)
    assert "America/New_York" in data.window.source
    assert data.reconciliation["settled_file_rows"] == 2
    assert data.reconciliation["lake_latest_rows"] == 6
