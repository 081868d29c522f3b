"""The raw archive a rebill reads: the arrival window of a billing day, and the objects in it, on a
local folder or S3. ``RebillError`` is the rebill's one error (a bad setting, a missing archive or file).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from firehose.cli.errors import CommandError
from firehose.offline.lake import LakeError, S3Location, s3_client

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DEFAULT_WINDOW_DAYS = 3
# The raw delivery stream's data prefix (DESIGN §6); its error output lives beside it under errors/.
RAW_DATA_PREFIX = "ctr/"

# <prefix>YYYY/MM/DD/HH/<object name>: the arrival hour Firehose evaluated into the key.
_HOUR_KEY = re.compile(r"([0-9]{4})/([0-9]{2})/([0-9]{2})/([0-9]{2})/([^/]+)")


class RebillError(CommandError):
    """The rebill cannot run or cannot finish; the message names objects and settings, never content."""


# --- which objects: the arrival window ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArrivalWindow:
    """The UTC arrival hours of the objects a rebill of ``day`` reads: from the start of the day before
    through the end of the day ``window_days`` after it (the key's hour is UTC; a billing day in any
    time zone starts no earlier than 14 hours before its UTC date, so the day before covers it)."""

    day: date
    window_days: int
    start: datetime
    end: datetime  # exclusive

    @classmethod
    def for_day(cls, day: date, window_days: int = DEFAULT_WINDOW_DAYS) -> ArrivalWindow:
        if window_days < 0:
            raise RebillError(f"--window-days must not be negative, got {window_days}")
        start = datetime.combine(day - timedelta(days=1), time(0), tzinfo=UTC)
        end = datetime.combine(day + timedelta(days=window_days + 1), time(0), tzinfo=UTC)
        return cls(day, window_days, start, end)

    @property
    def days(self) -> list[date]:
        """The UTC dates of the window, first to last (the key folders ``YYYY/MM/DD/`` to list)."""
        count = (self.end - self.start).days
        return [self.start.date() + timedelta(days=offset) for offset in range(count)]

    def __str__(self) -> str:
        last = self.end - timedelta(hours=1)
        return f"{self.start:%Y-%m-%d %H}h to {last:%Y-%m-%d %H}h UTC"


def arrival_hour(key: str) -> datetime | None:
    """The arrival hour in a key relative to the data prefix (``YYYY/MM/DD/HH/name``), or None for a key
    of another shape (or a hidden or partial file, whose name starts with ``.`` or ``_``)."""
    match = _HOUR_KEY.fullmatch(key)
    if match is None or match.group(5).startswith((".", "_")):
        return None
    year, month, day, hour = (int(match.group(index)) for index in range(1, 5))
    try:
        return datetime(year, month, day, hour, tzinfo=UTC)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class ArchiveObject:
    key: str  # relative to the archive's data prefix
    arrived: datetime
    size: int


def select_objects(listed: Iterable[tuple[str, int]], window: ArrivalWindow) -> list[ArchiveObject]:
    """The ``(key, size)`` whose arrival hour is in the window, in arrival order (then key order)."""
    selected = []
    for key, size in listed:
        hour = arrival_hour(key)
        if hour is not None and window.start <= hour < window.end:
            selected.append(ArchiveObject(key, hour, size))
    selected.sort(key=lambda item: (item.arrived, item.key))
    return selected


# --- where the objects are: a folder or a bucket ------------------------------------------------------


class Readable(Protocol):
    """A file opened for reading, or an S3 object's streaming body."""

    def read(self, size: int = -1, /) -> bytes: ...

    def seek(self, offset: int, /) -> object: ...

    def close(self) -> None: ...


class RawArchive(Protocol):
    """A raw archive's data prefix. Picklable: worker processes open objects themselves."""

    def list_day(self, day: date) -> list[tuple[str, int]]:
        """``(key, size)`` of the objects under ``YYYY/MM/DD/`` of the data prefix (keys relative to it)."""
        ...

    def open(self, key: str) -> Readable:
        """The object's (compressed) bytes, streamed."""
        ...

    def location(self, key: str = "") -> str:
        """Where a key is, for messages."""
        ...


@dataclass(frozen=True, slots=True)
class LocalArchive:
    """A folder as a demo leaves it (``DIR/raw`` holding ``ctr/…``) or the data folder itself."""

    root: Path

    def list_day(self, day: date) -> list[tuple[str, int]]:
        folder = self.root / f"{day:%Y}" / f"{day:%m}" / f"{day:%d}"
        if not folder.is_dir():
            return []
        return [
            (path.relative_to(self.root).as_posix(), path.stat().st_size)
            for path in sorted(folder.glob("*/*"))
            if path.is_file()
        ]

    def open(self, key: str) -> Readable:
        return (self.root / key).open("rb")

    def location(self, key: str = "") -> str:
        return str(self.root / key) if key else str(self.root)


class S3Archive:
    """``s3://bucket[/prefix]``; the raw bucket's ``ctr/`` when no prefix is given. The client is made
    in the process that uses it (boto3 clients do not cross processes)."""

    def __init__(self, bucket: str, prefix: str, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self._client = client

    def __getstate__(self) -> dict[str, str]:
        return {"bucket": self.bucket, "prefix": self.prefix}

    def __setstate__(self, state: dict[str, str]) -> None:
        self.__init__(state["bucket"], state["prefix"])  # type: ignore[misc]

    @property
    def client(self) -> S3Client:
        if self._client is None:
            self._client = s3_client()
        return self._client

    def list_day(self, day: date) -> list[tuple[str, int]]:
        listed: list[tuple[str, int]] = []
        day_prefix = f"{self.prefix}{day:%Y/%m/%d}/"
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=day_prefix
        ):
            listed.extend(
                (item["Key"][len(self.prefix) :], item.get("Size", 0)) for item in page.get("Contents", [])
            )
        return listed

    def open(self, key: str) -> Readable:
        body: Readable = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"]
        return body

    def location(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"


def open_archive(raw: str) -> RawArchive:
    """``--raw``: a folder (``DIR/raw`` or its ``ctr/``) or ``s3://BUCKET[/prefix/]``."""
    if raw.startswith("s3://"):
        try:
            location = S3Location.parse(raw)
        except LakeError as error:
            raise RebillError(str(error)) from None
        return S3Archive(location.bucket, location.prefix or RAW_DATA_PREFIX)
    path = Path(raw)
    if not path.is_dir():
        raise RebillError(f"no raw-archive folder at {path}: pass --raw DIR|s3://BUCKET[/ctr/]")
    data = path / RAW_DATA_PREFIX.rstrip("/")
    return LocalArchive(data if data.is_dir() else path)


def list_objects(archive: RawArchive, window: ArrivalWindow) -> list[ArchiveObject]:
    """The archive's objects that arrived in the window; refuses an empty selection (a wrong path or
    date would otherwise settle an empty day)."""
    listed = [item for day in window.days for item in archive.list_day(day)]
    selected = select_objects(listed, window)
    if not selected:
        raise RebillError(
            f"no raw-archive objects arrived from {window} under {archive.location()} "
            f"(keys YYYY/MM/DD/HH/<name>); check --raw, --date and --window-days"
        )
    return selected
