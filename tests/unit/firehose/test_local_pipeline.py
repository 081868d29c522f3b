"""Downloading a bucket of the local pipeline into the demo's output folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from firehose.pipeline.errors import PipelineError
from firehose.pipeline.local import download_bucket


class FakeS3:
    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    def get_paginator(self, operation: str) -> Any:
        assert operation == "list_objects_v2"
        keys = list(self.objects)

        class Paginator:
            def paginate(self, **_: Any) -> list[dict[str, Any]]:
                return [
                    {"Contents": [{"Key": key} for key in keys[:1]]},
                    {"Contents": [{"Key": k} for k in keys[1:]]},
                ]

        return Paginator()

    def download_file(self, bucket: str, key: str, filename: str) -> None:
        Path(filename).write_bytes(self.objects[key])


def test_every_object_is_downloaded_with_its_key_as_its_path(tmp_path: Path) -> None:
    # GIVEN a bucket with objects on two listing pages
    s3 = FakeS3({"billing/2026/11/02/a.csv": b"a\n", "errors/processing-failed/b": b"b\n"})
    # WHEN downloaded  THEN each object is at its key under the target
    keys = download_bucket(s3, "vendor", tmp_path / "vendor")  # type: ignore[arg-type]
    assert keys == list(s3.objects)
    assert (tmp_path / "vendor" / "billing" / "2026" / "11" / "02" / "a.csv").read_bytes() == b"a\n"
    assert (tmp_path / "vendor" / "errors" / "processing-failed" / "b").read_bytes() == b"b\n"


def test_a_key_that_would_escape_the_output_folder_is_refused(tmp_path: Path) -> None:
    # GIVEN an object whose key climbs out of the folder
    s3 = FakeS3({"../../outside": b"x"})
    # WHEN downloaded  THEN it is refused and nothing is written outside
    with pytest.raises(PipelineError, match="escapes the output folder in bucket vendor"):
        download_bucket(s3, "vendor", tmp_path / "out" / "vendor")  # type: ignore[arg-type]
    assert not (tmp_path / "outside").exists()
