"""``ctr-billing generate``: example inputs, like ``sam local generate-event``.

    ctr-billing generate ctrs --contacts N [--seed S] [--mix KIND=WEIGHT,...] --output FILE
    ctr-billing generate event firehose [--input CTRS] [--output FILE]
    ctr-billing generate event contact-flow --function lookup-by-extension|lookup-by-agent [--input CTRS]

``ctrs`` writes the demo's simulated Connect traffic as JSON lines (CTRs, republished versions and
agent events, as Connect streams them), and what the simulator knows about it to FILE.truth.json.
``event`` writes one event for the Lambdas in the shapes AWS publishes (tests/events/): the Firehose
data-transformation request of a Kinesis-sourced delivery stream (each line of CTRS base64-encoded, with
its kinesisRecordMetadata), or the contact flow's request to a lookup Lambda. Without --input the CTRs
are simulated (--contacts, --seed).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import re
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from firehose.cli.arguments import whole_number
from firehose.cli.errors import CommandError
from firehose.offline.transform import open_output

# Values of the published examples' fictional account, instance and streams (tests/events/).
REGION = "us-east-1"
SOURCE_STREAM_ARN = "arn:aws:kinesis:us-east-1:111122223333:stream/ctr-billing-ctr"
DELIVERY_STREAM_ARN = "arn:aws:firehose:us-east-1:111122223333:deliverystream/ctr-billing-vendor"
FIRST_ARRIVAL_MS = 1793715600000
FIRST_SEQUENCE = 49546986683135544286507457936321625675700192471156785154
# Firehose sends a transform at most 6 MB per invocation.
MAX_EVENT_BYTES = 6_000_000
EVENT_CONTACTS = 3
# Contacts simulated at most to find a call for a contact-flow event.
CONTACT_FLOW_SEARCH = 1000
FUNCTIONS = ("lookup-by-extension", "lookup-by-agent")


def _plain(text: str) -> str:
    return re.sub(r"``([^`]+)``", r"\1", text)


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "generate",
        help="write example inputs: simulated CTRs, or a ready event for the Lambdas",
        description=_plain(__doc__ or ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kinds = parser.add_subparsers(dest="what", required=True, metavar="WHAT")

    ctrs = kinds.add_parser(
        "ctrs",
        help="simulated CTRs as JSON lines, with the simulator's truth beside them",
        description="Write simulated Connect traffic (the demo's simulator) as JSON lines to --output, "
        "and what it holds (contacts, billable contacts and seconds by kind) to OUTPUT.truth.json. "
        "Billability follows BILLABLE_CHANNELS, MIN_BILLABLE_SECONDS and EXTENSION_ATTRIBUTE, as the "
        "transform reads them. The same seed and mix give the same file.",
    )
    _simulation_options(ctrs, default_contacts=None)
    ctrs.add_argument(
        "--mix",
        metavar="KIND=WEIGHT,...",
        type=_mix,
        help="contact kinds and their relative weights; kinds not named are not generated "
        f"(default: the demo's mix). Kinds: {', '.join(_kind_names())}",
    )
    ctrs.add_argument("--output", required=True, metavar="FILE", help="the JSON lines file to write")
    ctrs.set_defaults(handler=run_ctrs)

    event = kinds.add_parser(
        "event",
        help="a ready event for a Lambda (Firehose transform or contact-flow lookup)",
        description="Write one event for the project's Lambdas, in the shape AWS sends it.",
    )
    event.add_argument(
        "source",
        choices=("firehose", "contact-flow"),
        help="firehose: the transform's Firehose request; contact-flow: a lookup Lambda's request",
    )
    event.add_argument(
        "--input",
        metavar="CTRS",
        type=Path,
        help="JSON lines of CTRs to put in the event (default: simulated ones)",
    )
    event.add_argument(
        "--function",
        choices=FUNCTIONS,
        default="lookup-by-extension",
        help="contact-flow only: the lookup the event is for: lookup-by-extension (GetAgentByExtension, "
        "Parameters.extensionNumber) or lookup-by-agent (GetAgentExtensionByAgentId, Parameters.AgentArn); "
        "default: lookup-by-extension",
    )
    _simulation_options(event, default_contacts=EVENT_CONTACTS)
    event.add_argument(
        "--output", metavar="FILE", default="-", help="the JSON file to write, or - for stdout (default: -)"
    )
    event.set_defaults(handler=run_event)


def _simulation_options(parser: argparse.ArgumentParser, *, default_contacts: int | None) -> None:
    parser.add_argument(
        "--contacts",
        metavar="N",
        type=whole_number,
        required=default_contacts is None,
        default=default_contacts,
        help="simulated contacts (a transfer is two)"
        + ("" if default_contacts is None else f"; default: {default_contacts}"),
    )
    parser.add_argument(
        "--seed", metavar="S", type=int, default=7, help="simulator seed (default: 7; same seed, same CTRs)"
    )


def _kind_names() -> list[str]:
    from firehose.pipeline.simulator import Kind

    return [kind.value for kind in Kind]


def _mix(text: str) -> dict[str, float]:
    from firehose.pipeline.simulator import Kind

    mix: dict[str, float] = {}
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        name, found, weight = part.partition("=")
        name = name.strip().lower()
        if not found or name not in {kind.value for kind in Kind}:
            raise argparse.ArgumentTypeError(
                f"{part!r} is not KIND=WEIGHT with KIND one of {', '.join(_kind_names())}"
            )
        try:
            value = float(weight)
        except ValueError:
            raise argparse.ArgumentTypeError(f"weight of {name} is not a number: {weight!r}") from None
        if value < 0 or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"weight of {name} must be a non-negative number")
        mix[name] = value
    if not any(mix.values()):
        raise argparse.ArgumentTypeError("give at least one kind a weight above 0")
    return mix


def _simulator(contacts: int, seed: int, mix: Mapping[str, float] | None = None) -> Any:
    from firehose.pipeline.simulator import DEFAULT_MIX, ConnectSimulator, Kind, billing_settings

    weights = DEFAULT_MIX if mix is None else {Kind(name): weight for name, weight in mix.items()}
    return ConnectSimulator(contacts, seed=seed, mix=weights, **billing_settings(os.environ))


# --- generate ctrs --------------------------------------------------------------------------------


def truth_path(output: Path) -> Path:
    return output.with_name(output.name + ".truth.json")


def run_ctrs(args: argparse.Namespace) -> int:
    output = Path(args.output)
    if args.output == "-":
        raise CommandError("--output must be a file: the truth is written beside it")
    try:
        simulator = _simulator(args.contacts, args.seed, args.mix)
    except ValueError as error:
        raise CommandError(str(error)) from None
    records = 0
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with open_output(str(output), "wb") as sink:
            for record in simulator.records():
                sink.write(record.data + b"\n")
                records += 1
        truth = {
            "seed": args.seed,
            "contacts": args.contacts,
            "mix": args.mix,
            "file": output.name,
            **simulator.truth.as_dict(),
        }
        with open_output(str(truth_path(output)), "w") as sink:
            sink.write(json.dumps(truth, indent=2) + "\n")
    except OSError as error:
        raise CommandError(f"cannot write {error.filename or output}: {error.strerror or error}") from None
    print(f"wrote {output} ({records} records) and {truth_path(output)}", file=sys.stderr)
    return 0


# --- generate event -------------------------------------------------------------------------------


def _lines(args: argparse.Namespace) -> Iterator[tuple[bytes, str]]:
    """Each record's bytes and partition key: the lines of --input, or simulated CTRs."""
    if args.input is not None:
        if not args.input.is_file():
            raise CommandError(f"--input {args.input} is not a file")
        from firehose.pipeline.producer import input_records

        for data, key in input_records(args.input):
            if data.strip():
                yield data, _contact_id(data) or key
        return
    for record in _simulator(args.contacts, args.seed).records():
        yield record.data, record.partition_key


def _contact_id(data: bytes) -> str | None:
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than any CTR
        return None
    contact_id = document.get("ContactId") if isinstance(document, dict) else None
    return contact_id if isinstance(contact_id, str) else None


def firehose_event(records: Iterator[tuple[bytes, str]], seed: int = 7) -> dict[str, Any]:
    """The Firehose data-transformation request of a Kinesis-sourced delivery stream (DESIGN §4)."""
    rng = random.Random(f"{seed}-event")
    entries = []
    for index, (data, partition_key) in enumerate(records):
        sequence = str(FIRST_SEQUENCE + index)
        arrival = FIRST_ARRIVAL_MS + index * 100
        entries.append(
            {
                "data": base64.b64encode(data).decode("ascii"),
                "recordId": sequence + "0" * 12,
                "approximateArrivalTimestamp": arrival,
                "kinesisRecordMetadata": {
                    "shardId": "shardId-000000000000",
                    "partitionKey": partition_key,
                    "approximateArrivalTimestamp": arrival,
                    "sequenceNumber": sequence,
                    "subsequenceNumber": "",
                },
            }
        )
    return {
        "invocationId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "sourceKinesisStreamArn": SOURCE_STREAM_ARN,
        "deliveryStreamArn": DELIVERY_STREAM_ARN,
        "region": REGION,
        "records": entries,
    }


def contact_flow_event(ctr: Mapping[str, Any], function: str, extension_attribute: str) -> dict[str, Any]:
    """A contact flow's *Invoke AWS Lambda function* request for ``function``, from one CTR."""
    queue = ctr.get("Queue") or {}
    contact_id = ctr.get("ContactId")
    contact_data = {
        "Attributes": dict(ctr.get("Attributes") or {}),
        "Channel": ctr.get("Channel"),
        "ContactId": contact_id,
        "CustomerEndpoint": ctr.get("CustomerEndpoint"),
        "InitialContactId": ctr.get("InitialContactId") or contact_id,
        "InitiationMethod": ctr.get("InitiationMethod"),
        "InstanceARN": ctr.get("InstanceARN"),
        "PreviousContactId": ctr.get("PreviousContactId") or contact_id,
        "Queue": {"ARN": queue.get("ARN"), "Name": queue.get("Name")} if queue else None,
        "SystemEndpoint": ctr.get("SystemEndpoint"),
    }
    if function == "lookup-by-agent":
        parameters = {"AgentArn": (ctr.get("Agent") or {}).get("ARN")}
    else:
        parameters = {"extensionNumber": (ctr.get("Attributes") or {}).get(extension_attribute)}
    return {"Details": {"ContactData": contact_data, "Parameters": parameters}, "Name": "ContactFlowEvent"}


def _fits(ctr: Any, function: str, extension_attribute: str) -> bool:
    if not isinstance(ctr, dict) or "ContactId" not in ctr or ctr.get("Channel") != "VOICE":
        return False  # contact flows invoke the lookups on calls
    if function == "lookup-by-agent":
        return isinstance((ctr.get("Agent") or {}).get("ARN"), str)
    return isinstance((ctr.get("Attributes") or {}).get(extension_attribute), str)


def run_event(args: argparse.Namespace) -> int:
    if args.source == "firehose":
        event = firehose_event(_lines(args), args.seed)
        if not event["records"]:
            raise CommandError("no records for the event: --input is empty or --contacts is 0")
    else:
        attribute = os.environ.get("EXTENSION_ATTRIBUTE") or "extensionNumber"
        if args.input is None:
            # Simulated: contacts until the first call that fits (the generator stops there).
            args.contacts = max(args.contacts, CONTACT_FLOW_SEARCH)
        for data, _ in _lines(args):
            try:
                ctr = json.loads(data)
            except (ValueError, RecursionError):  # not JSON, or nested deeper than any CTR
                continue
            if _fits(ctr, args.function, attribute):
                event = contact_flow_event(ctr, args.function, attribute)
                break
        else:
            wanted = "an agent" if args.function == "lookup-by-agent" else f"the {attribute} attribute"
            raise CommandError(f"no CTR with {wanted} to build the event from")
    text = json.dumps(event, indent=2) + "\n"
    if len(text.encode()) > MAX_EVENT_BYTES:
        raise CommandError(
            f"the event is {len(text.encode()):,} bytes, over Firehose's 6 MB per invocation: use fewer contacts"
        )
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    output = Path(args.output)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with open_output(str(output), "w") as sink:
            sink.write(text)
    except OSError as error:
        raise CommandError(f"cannot write {output}: {error.strerror or error}") from None
    print(f"wrote {output}", file=sys.stderr)
    return 0
