"""The billing-row column registry: the one definition of the vendor CSV's and the data lake's columns.

The Glue table in ``cloudformation/template.yaml``, the Parquet written by the local runtime and the
offline CLI, and the CSV column names all derive from ``COLUMNS`` (tests compare them).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pyarrow is only needed where Parquet is written, never in the Lambda.
    import pyarrow as pa


class ColumnType(enum.Enum):
    STRING = "string"
    BIGINT = "bigint"
    TIMESTAMP = "timestamp"

    @property
    def glue_type(self) -> str:
        """The Glue / Athena (Hive DDL) type name."""
        return self.value


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: ColumnType
    description: str
    # A value matching this pattern is written to CSV unchanged even if it starts with a
    # formula-trigger character (an E.164 number starts with '+').
    strict_format: re.Pattern[str] | None = None


E164 = re.compile(r"\+[0-9]{1,15}")
DIGITS = re.compile(r"[0-9]+")

COLUMNS: tuple[Column, ...] = (
    Column("call_type", ColumnType.STRING, "INBOUND or OUTBOUND, from InitiationMethod"),
    Column("initiation_timestamp", ColumnType.TIMESTAMP, "InitiationTimestamp"),
    Column("duration_seconds", ColumnType.BIGINT, "provider time: provider_left_timestamp - connected"),
    Column("patient_phone", ColumnType.STRING, "CustomerEndpoint.Address (telephone numbers only)", E164),
    Column("provider_extension", ColumnType.STRING, "the provider's extension", DIGITS),
    Column("hold_seconds", ColumnType.BIGINT, "Agent.CustomerHoldDuration"),
    Column("contact_id", ColumnType.STRING, "ContactId"),
    Column("initial_contact_id", ColumnType.STRING, "InitialContactId"),
    Column("previous_contact_id", ColumnType.STRING, "PreviousContactId"),
    Column("channel", ColumnType.STRING, "Channel"),
    Column("initiation_method", ColumnType.STRING, "InitiationMethod"),
    Column("connected_to_agent_timestamp", ColumnType.TIMESTAMP, "Agent.ConnectedToAgentTimestamp"),
    Column("disconnect_timestamp", ColumnType.TIMESTAMP, "DisconnectTimestamp"),
    Column("last_update_timestamp", ColumnType.TIMESTAMP, "LastUpdateTimestamp"),
    Column("agent_id", ColumnType.STRING, "last segment of Agent.ARN"),
    Column("agent_username", ColumnType.STRING, "Agent.Username"),
    Column("queue_name", ColumnType.STRING, "Queue.Name"),
    Column("number_of_holds", ColumnType.BIGINT, "Agent.NumberOfHolds"),
    Column("disconnect_reason", ColumnType.STRING, "DisconnectReason"),
    # Added with the second version of the billing rules: lake files written before hold nulls here.
    Column("provider_left_timestamp", ColumnType.TIMESTAMP, "the end of provider time"),
    Column("contact_duration_seconds", ColumnType.BIGINT, "DisconnectTimestamp - InitiationTimestamp"),
    Column("next_contact_id", ColumnType.STRING, "NextContactId"),
)

COLUMNS_BY_NAME: dict[str, Column] = {column.name: column for column in COLUMNS}
COLUMN_NAMES: tuple[str, ...] = tuple(COLUMNS_BY_NAME)
DEFAULT_CSV_COLUMNS: tuple[str, ...] = COLUMN_NAMES[:6]

# Dynamic-partition keys the json-mode transform returns in metadata.partitionKeys.
PARTITION_KEYS: tuple[str, ...] = ("year", "month", "day")

# The data lake's table name, in Glue and in local (DuckDB) queries alike.
LAKE_TABLE = "billing_rows"


def arrow_type(column_type: ColumnType) -> pa.DataType:
    import pyarrow as pa

    return {
        ColumnType.STRING: pa.string(),
        ColumnType.BIGINT: pa.int64(),
        ColumnType.TIMESTAMP: pa.timestamp("ms", tz="UTC"),
    }[column_type]


def arrow_schema() -> pa.Schema:
    """The Parquet schema of the data lake's billing rows (partition columns excluded)."""
    import pyarrow as pa

    return pa.schema([pa.field(column.name, arrow_type(column.type)) for column in COLUMNS])
