"""ctr-billing beside Voicemail Express: its voicemail contacts never reach an agent, so they are never
billed. The CTR is shaped from Voicemail Express's public source (tests/fixtures/voicemail_express/README.md
says which field comes from where)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from transform.core.rules import NotBillable, NotBillableReason, classify
from transform.core.settings import TransformSettings

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "voicemail_express" / "voicemail-contact.json"


def deliveries() -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return records


def test_fixture_has_the_shape_voicemail_expresss_trigger_filters_for() -> None:
    # GIVEN the first delivery, the one Voicemail Express's Kinesis trigger lets through
    # (CTRStreamMapping's FilterCriteria in its CloudFormation/vmx3-triggers.yaml)
    first, republished = deliveries()
    # THEN it is flagged, has an IVR recording and no agent
    assert first["Attributes"]["vmx3_flag"] == "1"
    assert [recording["ParticipantType"] for recording in first["Recordings"]] == ["IVR"]
    assert first["Agent"] is None
    # AND the second is the same contact, republished after the packager cleared the flag
    assert republished["ContactId"] == first["ContactId"]
    assert republished["Attributes"]["vmx3_flag"] == "0"
    assert republished["LastUpdateTimestamp"] > first["LastUpdateTimestamp"]


@pytest.mark.parametrize("delivery", [0, 1], ids=["flagged", "republished"])
def test_a_voicemail_express_voicemail_is_never_billed(delivery: int) -> None:
    # GIVEN a delivery of a Voicemail Express voicemail, and the transform's default settings
    ctr = deliveries()[delivery]
    settings = TransformSettings.from_environ({})
    # WHEN the billing rules classify it
    classification = classify(ctr, settings)
    # THEN it is not billable, because the caller never reached a provider
    assert classification == NotBillable(NotBillableReason.NOT_CONNECTED_TO_AGENT)
