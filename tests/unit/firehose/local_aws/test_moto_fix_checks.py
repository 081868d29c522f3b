"""The start-up checks of the moto fixes (``firehose.local_aws.moto_fixes``): the embedded AWS refuses
to start on a moto whose patched code is not the code the fixes were written against."""

from __future__ import annotations

import subprocess
import sys

import moto
import pytest

from firehose.local_aws import moto_fixes
from firehose.local_aws.moto_fixes import MotoFix, MotoFixError, Target, fingerprint


class Verified:
    """Stands for a moto class as a fix was written against it."""

    def answer(self) -> int:
        return 1


class Changed:
    """The same class in a later moto release: same method name, other code."""

    def answer(self) -> int:
        return 2


def _fix(owner: type, name: str = "answer") -> MotoFix:
    target = Target(owner, name, (fingerprint(Verified.answer),))
    return MotoFix("example-fix", "fix", "moto answers 1 where AWS answers 2.", (target,), (), lambda: None)


def test_a_target_whose_source_is_the_verified_one_passes() -> None:
    # GIVEN a fix whose target is the code it was verified with WHEN it is checked THEN nothing is raised
    _fix(Verified).check()


def test_a_changed_target_fails_naming_the_fix_the_function_and_moto_s_version() -> None:
    # GIVEN a fix whose target's code changed since it was verified
    fix = _fix(Changed)

    # WHEN it is checked
    with pytest.raises(MotoFixError) as raised:
        fix.check()

    # THEN the message says which fix, which function, which moto, and what the fix corrects
    message = str(raised.value)
    assert "'example-fix'" in message
    assert f"{__name__}.Changed.answer" in message
    assert f"moto {moto.__version__}" in message
    assert "moto answers 1 where AWS answers 2." in message
    assert fingerprint(Changed.answer) in message


def test_a_missing_target_fails_naming_the_fix() -> None:
    # GIVEN a fix whose target no longer exists WHEN it is checked THEN the message names it as missing
    with pytest.raises(MotoFixError, match=r"has no .*Verified\.gone.*'example-fix'"):
        _fix(Verified, "gone").check()


@pytest.mark.parametrize("version", ["5.1.21", "5.3.0", "6.0.0"])
def test_a_moto_outside_the_verified_range_fails(monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    # GIVEN a moto release outside the range the fixes were verified with
    monkeypatch.setattr(moto, "__version__", version)
    # WHEN the fixes are checked THEN the message names the release and the range
    with pytest.raises(MotoFixError, match=rf"moto{moto_fixes.MOTO_RANGE_TEXT}, found moto {version}"):
        moto_fixes.check_moto()


def test_every_fix_matches_the_installed_moto_before_it_is_installed() -> None:
    # GIVEN a fresh interpreter that has not installed the fixes (only the server module installs them)
    code = (
        "from firehose.local_aws import moto_fixes as m; from moto.kinesis.models import Shard; "
        "m.check_moto(); print(len(m.FIXES), Shard.get_records.__module__)"
    )

    # WHEN every fix is checked against the installed moto
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)

    # THEN all pass on moto's own, unpatched code
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.split() == [str(len(moto_fixes.FIXES)), "moto.kinesis.models"]


def test_the_server_does_not_start_on_a_moto_whose_patched_function_changed() -> None:
    # GIVEN a moto whose Shard.get_records is not the code the fix was written against
    code = (
        "from moto.kinesis.models import Shard\n"
        "def get_records(self, last_sequence_id, limit):\n"
        "    return [], int(last_sequence_id), 0\n"
        "Shard.get_records = get_records\n"
        "import firehose.local_aws.server\n"
    )

    # WHEN the embedded AWS's server module is imported (it installs the fixes)
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)

    # THEN it fails loudly, naming the fix and the function
    assert completed.returncode != 0
    assert "MotoFixError" in completed.stderr
    assert "'kinesis-shard-reads'" in completed.stderr
    assert "moto.kinesis.models.Shard.get_records" in completed.stderr
