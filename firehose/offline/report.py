"""``ctr-billing report``: one billing day as a self-contained HTML page of charts.

What it reads, all local folders as a demo leaves them (``DIR/raw``, ``DIR/vendor``, ``DIR/lake``, and the
settled files):

- the **data lake** (``LocalLake``, DuckDB): the day's latest version of each billable contact, for the
  billed minutes by provider, the calls by hour and call type and the hold-time distribution;
- the **raw archive** (every CTR, billable or not): each contact's latest version run through the billing
  rules (``transform.core.rules.classify``) for the contacts by outcome and not-billable reason; the lake
  holds billable rows only, so this is the one source of what was *not* billed;
- the **vendor's streamed CSV** and the **settled file**: their rows for the day, beside the lake's latest
  rows, for the reconciliation.

The day is the settled file's window when its manifest is there (the billing day in the billing time
zone), else the UTC calendar day (the lake's partition). Charts are Plotly figures; the page inlines
plotly.js once, so it opens offline and loads nothing. No patient phone number is read: the queries select
only the columns the charts need, and the vendor CSV is read for its ``initiation_timestamp`` column alone.
"""

from __future__ import annotations

import csv
import gzip
import html
import json
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, TextIO

from firehose.offline.lake import LocalLake
from transform.core.rules import InvalidContact, NotAContactRecord, NotBillable, Outcome, classify
from transform.core.settings import TransformSettings
from transform.core.timestamps import TimestampError, parse_timestamp
from transform.settlement.export import csv_name, manifest_name

# Hold-time histogram bucket width.
HOLD_BIN_SECONDS = 30
# The vendor's streamed CSV under the vendor folder (the bucket's data prefix).
VENDOR_DATA_PREFIX = "billing"
RAW_DATA_PREFIX = "ctr"
_TIMESTAMP_SQL = "%Y-%m-%d %H:%M:%S"


class ReportError(Exception):
    """The report cannot be made from the given folders; the message names paths, never row values."""


@dataclass(frozen=True, slots=True)
class ReportWindow:
    day: date
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive
    source: str  # where the window comes from, for the page

    def holds(self, moment: datetime) -> bool:
        return self.start <= moment.astimezone(UTC) < self.end


@dataclass
class ReportData:
    window: ReportWindow
    # Outcome label -> contacts; None when no raw archive was given.
    outcomes: dict[str, int] | None = None
    outcome_note: str = ""
    minutes_by_provider: list[tuple[str, float]] = field(default_factory=list)
    calls_by_hour: list[tuple[int, str, int]] = field(default_factory=list)  # hour (UTC), call type, calls
    hold_bins: list[tuple[int, int]] = field(default_factory=list)  # bin start (seconds), calls
    reconciliation: dict[str, int | None] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "date": self.window.day.isoformat(),
            "window_start_utc": self.window.start.strftime(_TIMESTAMP_SQL),
            "window_end_utc": self.window.end.strftime(_TIMESTAMP_SQL),
            "outcomes": self.outcomes,
            "minutes_by_provider": dict(self.minutes_by_provider),
            "reconciliation": self.reconciliation,
        }


# ---- the window ------------------------------------------------------------------------------------


def report_window(day: date, settled: Path | None) -> ReportWindow:
    """The settled file's window when its manifest is there, else the UTC day."""
    manifest = settled / manifest_name(day) if settled is not None else None
    if manifest is not None and manifest.is_file():
        try:
            document = json.loads(manifest.read_text(encoding="utf-8"))
            start = datetime.strptime(document["window_start_utc"], _TIMESTAMP_SQL).replace(tzinfo=UTC)
            end = datetime.strptime(document["window_end_utc"], _TIMESTAMP_SQL).replace(tzinfo=UTC)
        except (ValueError, KeyError, TypeError):
            raise ReportError(f"{manifest} is not a settled file's manifest") from None
        return ReportWindow(
            day, start, end, f"billing day in {document.get('timezone', 'UTC')} (settled manifest)"
        )
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return ReportWindow(day, start, start + timedelta(days=1), "UTC calendar day")


def busiest_day(lake: Path) -> date | None:
    """The lake's day (UTC partition) with the most latest-version rows; None for an empty lake."""
    with LocalLake(lake) as local:
        result = local.query(
            "SELECT year, month, day, count(*) AS calls FROM latest_billing_rows "
            "GROUP BY year, month, day ORDER BY calls DESC, year, month, day LIMIT 1"
        )
    if not result.rows:
        return None
    year, month, day, _ = result.rows[0]
    return date(int(year), int(month), int(day))


# ---- gathering -------------------------------------------------------------------------------------


def gather(
    day: date,
    lake: Path,
    *,
    raw: Path | None = None,
    vendor: Path | None = None,
    settled: Path | None = None,
    settings: TransformSettings | None = None,
) -> ReportData:
    """Everything the page shows for ``day``, from the folders given (each one optional but the lake)."""
    if not lake.is_dir():
        raise ReportError(f"no lake folder at {lake}: pass --lake DIR (a demo's DIR/lake)")
    settings = settings or TransformSettings()
    window = report_window(day, settled)
    data = ReportData(window)
    _from_lake(data, lake)
    if raw is not None and raw.is_dir():
        data.outcomes, data.outcome_note = _outcomes(raw, window, settings)
    else:
        data.outcome_note = "no raw archive given (--raw): outcomes unknown"
    data.reconciliation["vendor_streamed_rows"] = (
        _vendor_rows(vendor, window, settings) if vendor is not None and vendor.is_dir() else None
    )
    data.reconciliation["settled_file_rows"] = _settled_rows(settled, day)
    return data


def _from_lake(data: ReportData, lake: Path) -> None:
    window = data.window
    bounds = (window.start.strftime(_TIMESTAMP_SQL), window.end.strftime(_TIMESTAMP_SQL))
    where = (
        "WHERE initiation_timestamp >= CAST(? AS timestamp) AND initiation_timestamp < CAST(? AS timestamp)"
    )
    with LocalLake(lake) as local:
        minutes = local.query(
            "SELECT coalesce(provider_extension, '') AS provider, sum(duration_seconds) AS seconds "  # noqa: S608
            f"FROM latest_billing_rows {where} GROUP BY 1 ORDER BY seconds DESC, provider",
            bounds,
        )
        data.minutes_by_provider = [(str(p) or "(none)", round(int(s or 0) / 60, 1)) for p, s in minutes.rows]
        hours = local.query(
            "SELECT hour(initiation_timestamp) AS h, call_type, count(*) AS calls "  # noqa: S608
            f"FROM latest_billing_rows {where} GROUP BY 1, 2 ORDER BY 1, 2",
            bounds,
        )
        data.calls_by_hour = [(int(h), str(t), int(c)) for h, t, c in hours.rows]
        holds = local.query(
            f"SELECT CAST(floor(coalesce(hold_seconds, 0) / {HOLD_BIN_SECONDS}) AS bigint) * {HOLD_BIN_SECONDS} "  # noqa: S608
            f"AS bin, count(*) AS calls FROM latest_billing_rows {where} GROUP BY 1 ORDER BY 1",
            bounds,
        )
        data.hold_bins = [(int(b), int(c)) for b, c in holds.rows]
        latest = local.query(f"SELECT count(*) FROM latest_billing_rows {where}", bounds)  # noqa: S608
        versions = local.query(f"SELECT count(*) FROM billing_rows {where}", bounds)  # noqa: S608
    data.reconciliation["lake_latest_rows"] = int(latest.rows[0][0])
    data.reconciliation["lake_rows_all_versions"] = int(versions.rows[0][0])


def _files(folder: Path) -> Iterator[Path]:
    yield from sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith((".", "_")))


def _lines(path: Path) -> Iterator[bytes]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as stream:
        yield from stream


def _text(path: Path) -> TextIO:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def _outcomes(raw: Path, window: ReportWindow, settings: TransformSettings) -> tuple[dict[str, int], str]:
    """Each contact's latest version in the raw archive, classified; contacts initiated in the window."""
    data = raw / RAW_DATA_PREFIX if (raw / RAW_DATA_PREFIX).is_dir() else raw
    latest: dict[str, tuple[str, str]] = {}  # contact id -> (LastUpdateTimestamp, label)
    counts: Counter[str] = Counter()
    for path in _files(data):
        for line in _lines(path):
            if not line.strip():
                continue
            try:
                ctr = json.loads(line)
            except (ValueError, UnicodeDecodeError):
                counts[Outcome.MALFORMED.value] += 1
                continue
            if type(ctr) is not dict:
                counts[Outcome.MALFORMED.value] += 1
                continue
            label = _label(ctr, settings)
            if label is None:
                continue
            try:
                initiated = parse_timestamp(ctr.get("InitiationTimestamp"))
            except TimestampError:
                counts[label] += 1  # invalid without a day: counted, not attributable to a day
                continue
            if not window.holds(initiated):
                continue
            contact = str(ctr["ContactId"])
            updated = str(ctr.get("LastUpdateTimestamp") or "")
            if contact not in latest or updated >= latest[contact][0]:
                latest[contact] = (updated, label)
    counts.update(label for _, label in latest.values())
    note = "raw archive, each contact's latest version classified by the billing rules"
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0]))), note


def _label(ctr: dict[str, Any], settings: TransformSettings) -> str | None:
    classification = classify(ctr, settings)
    if isinstance(classification, NotAContactRecord):
        return None
    if isinstance(classification, NotBillable):
        return f"{Outcome.NOT_BILLABLE.value}: {classification.reason.value}"
    if isinstance(classification, InvalidContact):
        return Outcome.INVALID.value
    return Outcome.BILLABLE.value


def _vendor_rows(vendor: Path, window: ReportWindow, settings: TransformSettings) -> int | None:
    """Streamed vendor CSV rows initiated in the window (every delivered line, duplicates included)."""
    if "initiation_timestamp" not in settings.csv_columns:
        return None
    column = settings.csv_columns.index("initiation_timestamp")
    data = vendor / VENDOR_DATA_PREFIX if (vendor / VENDOR_DATA_PREFIX).is_dir() else vendor
    rows = 0
    for path in _files(data):
        if not path.name.endswith((".csv", ".csv.gz")):
            continue
        with _text(path) as text:
            for cells in csv.reader(text):
                if len(cells) <= column:
                    continue
                try:
                    initiated = parse_timestamp(cells[column])
                except TimestampError:
                    continue
                rows += window.holds(initiated)
    return rows


def _settled_rows(settled: Path | None, day: date) -> int | None:
    path = settled / csv_name(day) if settled is not None else None
    if path is None or not path.is_file():
        return None
    with path.open(encoding="utf-8", newline="") as stream:
        return max(0, sum(1 for _ in csv.reader(stream)) - 1)  # less the header


# ---- rendering -------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f5f6f8;color:#1f2933}
header{background:#1f3a5f;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;opacity:.85;font-size:13px}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(560px,100%),1fr));gap:16px;padding:16px}
section{min-width:0;overflow:hidden;background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12);padding:12px 16px}
section h2{font-size:15px;margin:4px 0 8px}section p.note{font-size:12px;color:#52606d;margin:4px 0}
table{border-collapse:collapse;font-size:13px}td,th{padding:3px 10px;text-align:right}
th{text-align:left;font-weight:600}
"""
_CONFIG = {"displaylogo": False, "responsive": True}


def render_html(data: ReportData) -> str:
    """The page: plotly.js inlined once, one figure per section."""
    import plotly.graph_objects as go

    figures: list[tuple[str, str, go.Figure | None]] = [
        ("contacts-by-outcome", "Contacts by outcome and not-billable reason", _outcome_figure(data)),
        ("minutes-by-provider", "Billed minutes by provider extension", _provider_figure(data)),
        ("calls-by-hour", "Calls by hour (UTC) and call type", _hour_figure(data)),
        ("hold-time", f"Hold time distribution ({HOLD_BIN_SECONDS}-second bins)", _hold_figure(data)),
        ("reconciliation", "Reconciliation: streamed vs settled vs lake", _reconciliation_figure(data)),
    ]
    sections: list[str] = []
    plotly_js_included = False
    for anchor, title, figure in figures:
        body = '<p class="note">no data for this day</p>'
        if figure is not None:
            figure.update_layout(
                margin={"l": 60, "r": 20, "t": 20, "b": 60}, height=380, template="plotly_white"
            )
            body = figure.to_html(
                full_html=False,
                include_plotlyjs=not plotly_js_included,
                div_id=f"chart-{anchor}",
                config=_CONFIG,
            )
            plotly_js_included = True
        note = _notes(anchor, data)
        sections.append(f'<section id="{anchor}"><h2>{html.escape(title)}</h2>{note}{body}</section>')
    window = data.window
    subtitle = (
        f"{window.source}: {window.start:%Y-%m-%d %H:%M} to {window.end:%Y-%m-%d %H:%M} UTC"
        f" · generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Billing report {window.day.isoformat()}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # Nothing may be fetched: everything the page needs is in it.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src data:; font-src data:\">"
        f"<style>{_CSS}</style></head><body>"
        f"<header><h1>Billing report · {window.day.isoformat()}</h1><p>{html.escape(subtitle)}</p></header>"
        f"<main>{''.join(sections)}</main></body></html>\n"
    )


def _notes(anchor: str, data: ReportData) -> str:
    if anchor == "contacts-by-outcome":
        return f'<p class="note">{html.escape(data.outcome_note)}</p>'
    if anchor == "reconciliation":
        cells = "".join(
            f"<tr><th>{html.escape(name.replace('_', ' '))}</th><td>{'n/a' if value is None else f'{value:,}'}</td></tr>"
            for name, value in data.reconciliation.items()
        )
        return (
            '<p class="note">vendor streamed: every CSV line delivered (republished versions included); '
            "settled: the day's file; lake latest: one row per contact.</p>"
            f"<table>{cells}</table>"
        )
    return ""


def _outcome_figure(data: ReportData) -> Any:
    import plotly.graph_objects as go

    if not data.outcomes:
        return None
    labels = list(data.outcomes)
    colors = [
        "#2e7d32"
        if label == Outcome.BILLABLE.value
        else "#ef6c00"
        if label.startswith("NotBillable")
        else "#c62828"
        for label in labels
    ]
    return go.Figure(
        go.Bar(
            x=list(data.outcomes.values()),
            y=labels,
            orientation="h",
            marker_color=colors,
            text=list(data.outcomes.values()),
        )
    ).update_layout(
        yaxis={"autorange": "reversed"},
        xaxis={"title": "contacts", "range": [0, max(data.outcomes.values()) * 1.12]},
    )


def _provider_figure(data: ReportData) -> Any:
    import plotly.graph_objects as go

    if not data.minutes_by_provider:
        return None
    providers, minutes = zip(*data.minutes_by_provider, strict=True)
    return go.Figure(go.Bar(x=list(providers), y=list(minutes), marker_color="#1f77b4")).update_layout(
        xaxis={"type": "category", "title": "provider extension"}, yaxis_title="billed minutes"
    )


def _hour_figure(data: ReportData) -> Any:
    import plotly.graph_objects as go

    if not data.calls_by_hour:
        return None
    figure = go.Figure()
    for call_type in sorted({t for _, t, _ in data.calls_by_hour}):
        by_hour = {h: c for h, t, c in data.calls_by_hour if t == call_type}
        figure.add_trace(go.Bar(name=call_type, x=list(range(24)), y=[by_hour.get(h, 0) for h in range(24)]))
    return figure.update_layout(
        barmode="stack",
        xaxis={"title": "hour (UTC)", "dtick": 1},
        yaxis_title="calls",
        legend_title="call type",
    )


def _hold_figure(data: ReportData) -> Any:
    import plotly.graph_objects as go

    if not data.hold_bins:
        return None
    starts, calls = zip(*data.hold_bins, strict=True)
    return go.Figure(
        go.Bar(
            x=[s + HOLD_BIN_SECONDS / 2 for s in starts],
            y=list(calls),
            width=HOLD_BIN_SECONDS * 0.95,
            marker_color="#6a51a3",
        )
    ).update_layout(xaxis_title="hold seconds", yaxis_title="calls", bargap=0.02)


def _reconciliation_figure(data: ReportData) -> Any:
    import plotly.graph_objects as go

    known = {name: value for name, value in data.reconciliation.items() if value is not None}
    if not known:
        return None
    return go.Figure(
        go.Bar(
            x=[name.replace("_", " ") for name in known],
            y=list(known.values()),
            text=list(known.values()),
            marker_color=["#455a64", "#00897b", "#1f77b4", "#90a4ae"][: len(known)],
        )
    ).update_layout(yaxis_title="rows")


def write_report(
    day: date,
    lake: Path,
    out: Path,
    *,
    raw: Path | None = None,
    vendor: Path | None = None,
    settled: Path | None = None,
    settings: TransformSettings | None = None,
) -> ReportData:
    data = gather(day, lake, raw=raw, vendor=vendor, settled=settled, settings=settings)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(data), encoding="utf-8")
    return data


def demo_report(out: Path, environment: Mapping[str, str] | None = None) -> Path | None:
    """The report of a demo folder's busiest day, as ``out/report-DATE.html``; None for an empty lake."""
    day = busiest_day(out / "lake")
    if day is None:
        return None
    for earlier in out.glob("report-*.html"):  # an earlier run's busiest day
        earlier.unlink()
    settled = next((p for p in (out / "settled", out / "vendor" / "settled") if p.is_dir()), None)
    path = out / f"report-{day.isoformat()}.html"
    settings = TransformSettings.from_environ(environment) if environment is not None else None
    write_report(
        day, out / "lake", path, raw=out / "raw", vendor=out / "vendor", settled=settled, settings=settings
    )
    return path
