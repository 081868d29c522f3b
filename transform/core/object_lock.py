"""Object Lock retention of billing records: one policy, read from the environment, for every writer.

S3 Object Lock keeps an object *version* from being overwritten or deleted until its retain-until date.
The buckets have Object Lock enabled but no default retention (cloudformation/template.yaml,
``ObjectLockRetentionDays``: a default retention makes S3 refuse every PutObject without a checksum
header, and Firehose does not document sending one), so each writer locks what it writes: the settlement
export as it puts a settled file (``transform.settlement.athena.S3Destination``), the archive lock Lambda
as each raw CTR object arrives (``transform.retention``). Both read this policy, so "how long, in which
mode" has one source: ``OBJECT_LOCK_MODE`` and ``OBJECT_LOCK_RETENTION_DAYS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from transform.core.settings import SettingsError, positive_int

LockMode = Literal["GOVERNANCE", "COMPLIANCE"]
LOCK_MODES: tuple[LockMode, ...] = ("GOVERNANCE", "COMPLIANCE")
MODE_SETTING = "OBJECT_LOCK_MODE"
DAYS_SETTING = "OBJECT_LOCK_RETENTION_DAYS"


@dataclass(frozen=True, slots=True)
class ObjectLockPolicy:
    """Lock each version in ``mode`` for ``days`` after it was written."""

    mode: LockMode
    days: int

    def retain_until(self, written: datetime) -> datetime:
        """The retain-until date of a version written at ``written`` (timezone-aware)."""
        if written.tzinfo is None:
            raise ValueError("the time a version was written must carry its time zone")
        return written + timedelta(days=self.days)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ObjectLockPolicy | None:
        """The policy the environment sets, or None when neither setting is given.

        One setting without the other is an error (a lock silently not taken is the failure this
        prevents); so are a mode S3 does not have and a retention that is not a whole number of days.
        """
        mode = environ.get(MODE_SETTING, "").strip().upper()
        days_given = bool(environ.get(DAYS_SETTING, "").strip())
        if not mode and not days_given:
            return None
        if not mode:
            raise SettingsError(f"{MODE_SETTING} must be set when {DAYS_SETTING} is")
        if mode not in LOCK_MODES:
            raise SettingsError(f"{MODE_SETTING} must be one of {', '.join(LOCK_MODES)}, got {mode!r}")
        if not days_given:
            raise SettingsError(f"{DAYS_SETTING} must be set when {MODE_SETTING} is")
        return cls(mode, positive_int(environ, DAYS_SETTING, 1))

    @classmethod
    def required(cls, environ: Mapping[str, str]) -> ObjectLockPolicy:
        """The policy of a function whose whole job is locking: both settings must be given."""
        policy = cls.from_environ(environ)
        if policy is None:
            raise SettingsError(f"{MODE_SETTING} and {DAYS_SETTING} must be set")
        return policy
