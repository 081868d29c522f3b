"""A CLI fuzz campaign: every ``ctr-billing`` subcommand over hostile files and arguments, for a bounded
time, from a seeded generator (issue 13, "Prove it").

Each run calls ``firehose.cli.main.main`` in this process (fast; an uncaught exception is the
traceback a user would see) inside a sandbox folder that is also the working directory and ``HOME``,
and checks four properties:

- ``traceback``: no exception escapes ``main`` and stderr never holds ``Traceback``;
- ``write outside outputs``: every file created or changed in the sandbox is a named output (or lies
  under a named output folder); no temporary file is left behind;
- ``phi in stderr``: the planted fictional phone numbers never appear in stderr;
- ``input modified``: every input file is byte-for-byte as it was.

Violations are counted by property and command (never with the input, which may look like PHI).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import random
import shutil
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from firehose.cli.main import main
from tests.support.ctr_factory import SAMPLE_PHONE, billable_ctr

PHONE = "+15555550199"  # planted, fictional (555-01xx is reserved for fiction)
PHI_MARKERS = tuple({PHONE.lstrip("+"), PHONE[-10:], SAMPLE_PHONE.lstrip("+"), SAMPLE_PHONE[-10:]})
AGENT = "7d2e4f60-9a1b-4c3d-8e5f-6a7b8c9d0e1f"


@dataclass
class Report:
    tried: int = 0
    by_command: Counter[str] = field(default_factory=Counter)
    violations: Counter[str] = field(default_factory=Counter)
    exit_codes: Counter[int | None] = field(default_factory=Counter)
    # For whoever debugs a violation locally (CLI_FUZZ_DEBUG=1 prints them); never in the summary.
    details: list[tuple[str, list[str], str]] = field(default_factory=list)

    @property
    def violation_count(self) -> int:
        return sum(self.violations.values())

    def summary(self) -> str:
        commands = ", ".join(f"{name} {count}" for name, count in sorted(self.by_command.items()))
        found = ", ".join(f"{name} {count}" for name, count in sorted(self.violations.items())) or "none"
        return f"inputs tried: {self.tried} ({commands}); violations: {self.violation_count} ({found})"


@dataclass(frozen=True)
class Case:
    command: str
    argv: list[str]
    outputs: tuple[Path, ...] = ()
    stdin: bytes = b""


# --- hostile inputs --------------------------------------------------------------------------------


def _ctr_lines(rng: random.Random, count: int) -> bytes:
    lines = []
    for _ in range(count):
        ctr = billable_ctr(
            phone=PHONE, extension=rng.choice(["4417", "0417", "\u096a\u096a\u0967\u096d", "=1+2"])
        )
        lines.append(json.dumps(ctr, ensure_ascii=rng.random() < 0.5))
    return ("\n".join(lines) + "\n").encode()


def _mutate(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        choice = rng.random()
        if not data:
            break
        at = rng.randrange(len(data))
        if choice < 0.4:
            data[at] = rng.randrange(256)
        elif choice < 0.6:
            del data[at : at + rng.randint(1, 40)]
        elif choice < 0.8:
            data[at:at] = rng.choice(
                [b"\x00", b"\xff\xfe", b'"', b"\n", b"\r", b"\xef\xbb\xbf", b"{" * 50, "\u202e".encode()]
            )
        else:
            data = data[:at]
    return bytes(data)


DIRECTORY_FILES: dict[str, bytes] = {
    "ok": b"agentId,extension,username\nagent-0001,101,dr.a\nagent-0002,0417,dr.b\n",
    "unicode-digits": "agentId,extension,username\nagent-0003,\u0664\u0664\u0661\u0667,dr.c\n".encode(),
    "zero-clash": b"agentId,extension,username\nagent-0004,417,\nagent-0005,00417,\n",
    "dup-header": b"agentId,extension,extension\nagent-0001,1,2\n",
    "unterminated": b'agentId,extension,username\nagent-0001,"101,dr.a\n',
    "bad-utf8": b"agentId,extension,username\nagent-0001,101,dr.\xff\xfe\n",
    "huge-field": b"agentId,extension,username\nagent-0001,101," + b"x" * (200 * 1024) + b"\n",
    "rlo": "agentId,extension,username\nagent-0001,101,dr.\u202elive\n".encode(),
    "formula": b"agentId,extension,username\nagent-0006,606,=HYPERLINK(1)\n",
    "bom": b"\xef\xbb\xbfagentId,extension,username\nagent-0007,707,\n",
    "nul": b"agentId,extension,username\nagent-0001,1\x0001,\n",
    "empty": b"",
    "phone-as-ext": f"agentId,extension,username\nagent-0008,{PHONE},dr.x\n".encode(),
}

SQL = [
    "SELECT count(*) FROM billing_rows",
    "SELECT patient_phone FROM latest_billing_rows LIMIT 2",
    "SELECT json_extract(patient_phone, '$.x') FROM billing_rows",
    "SELECT CAST(patient_phone AS integer) FROM billing_rows",
    "SELECT * FROM read_csv('/etc/passwd')",
    "COPY (SELECT * FROM billing_rows) TO 'leak.csv'",
    "SELECT * FROM read_parquet('https://example.invalid/x.parquet')",
    "INSTALL httpfs",
    "ATTACH 'x.db'",
    "SELECT '\u202e' || chr(27) || '[31m'",
    "SELECT 1; SELECT 2",
    "",
    "SELEC",
    "SELECT * FROM nope",
    "PRAGMA version",
]

DATES = [
    "2026-11-02",
    "2026-11-03",
    "9999-12-31",
    "0001-01-01",
    "20261102",
    "2026-W44-1",
    "2026-02-30",
    "",
    "-1",
    "x" * 300,
]


class Campaign:
    def __init__(self, root: Path, seed: int, endpoint: str | None, table: str | None) -> None:
        self.root = root
        self.rng = random.Random(seed)
        self.endpoint = endpoint
        self.table = table
        self.inputs = root / "in"
        self.out = root / "out"
        self.home = root / "home"
        for folder in (self.inputs, self.out, self.home):
            folder.mkdir(parents=True, exist_ok=True)
        self.report = Report()
        self.raw_bucket: str | None = None
        self._write_fixed_inputs()

    # --- fixed inputs, built once --------------------------------------------------------------

    def _write_fixed_inputs(self) -> None:
        from tests.support.lake_samples import build_lake

        rng = self.rng
        valid = _ctr_lines(rng, 5)
        files = {
            "valid.jsonl": valid,
            "valid.jsonl.gz": gzip.compress(valid),
            "truncated.jsonl.gz": gzip.compress(valid)[:-12],
            "notgzip.jsonl.gz": valid,
            "bom.jsonl": b"\xef\xbb\xbf" + valid,
            "bad-utf8.jsonl": valid.replace(b"dr.okafor", b"dr.\xff\xfe"),
            "nul.jsonl": valid.replace(b"\n", b"\x00\n", 1),
            "huge-line.jsonl": b'{"x":"' + b"a" * (2 * 1024 * 1024) + b'"}\n',
            "deep.jsonl": b"[" * 100_000 + b"]" * 100_000 + b"\n",
            "numbers.jsonl": b'{"ContactId": 1e999999, "Channel": -0, "Agent": NaN}\n',
            "empty.jsonl": b"",
            "crlf.jsonl": valid.replace(b"\n", b"\r\n"),
        }
        for name, data in files.items():
            (self.inputs / name).write_bytes(data)
        for name, data in DIRECTORY_FILES.items():
            (self.inputs / f"directory-{name}.csv").write_bytes(data)
        (self.inputs / "folder").mkdir(exist_ok=True)
        raw = self.inputs / "raw" / "ctr" / "2026" / "11" / "02" / "14"
        raw.mkdir(parents=True, exist_ok=True)
        (raw / "ctr-1").write_bytes(valid)
        (raw / "ctr-2.gz").write_bytes(gzip.compress(valid)[:-5])
        (raw / "ctr-3").write_bytes(_mutate(rng, valid))
        build_lake(self.inputs / "lake")
        garbage = self.inputs / "badlake" / "billing_rows" / "year=2026" / "month=11" / "day=02"
        garbage.mkdir(parents=True, exist_ok=True)
        (garbage / "x.parquet").write_bytes(b"PAR1 not really" + os.urandom(64))
        (self.inputs / "badlake" / "settled").mkdir(exist_ok=True)
        (self.inputs / "badlake" / "settled" / "billing-2026-11-02.manifest.json").write_bytes(b'{"rows": ')
        self.raw_bucket = self._raw_bucket(valid)

    def _raw_bucket(self, valid: bytes) -> str | None:
        """An Object Lock bucket holding a day's raw objects, for ``lock-archive`` (with a moto server)."""
        if self.endpoint is None:
            return None
        import boto3

        s3 = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")
        bucket = f"fuzz-raw-{self.rng.randrange(16**8):08x}"
        s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
        for hour in ("14", "15"):
            s3.put_object(Bucket=bucket, Key=f"ctr/2026/11/02/{hour}/ctr-billing-raw-1", Body=valid)
        return bucket

    # --- cases ---------------------------------------------------------------------------------

    def _input(self) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.25:
            mutated = self.inputs / f"mutated-{rng.randrange(4)}.jsonl{rng.choice(['', '.gz'])}"
            data = _mutate(rng, (self.inputs / "valid.jsonl").read_bytes())
            if mutated.suffix == ".gz" and rng.random() < 0.7:
                data = gzip.compress(data)[: rng.randint(10, 10_000)]
            mutated.write_bytes(data)
            return str(mutated)
        if roll < 0.3:
            return rng.choice(
                ["/dev/null", str(self.inputs / "folder"), str(self.inputs / "missing.jsonl"), "-"]
            )
        return str(rng.choice([path for path in self.inputs.iterdir() if path.suffix in {".jsonl", ".gz"}]))

    def _output(self, name: str, source: str | None = None) -> tuple[str, tuple[Path, ...]]:
        """An output argument and what it may write."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.08 and source and source != "-":
            return source, ()  # the input itself: must be refused
        if roll < 0.14:
            return rng.choice(["/dev/full", "/dev/null"]), ()
        if roll < 0.2:
            return str(self.out), ()  # a folder
        if roll < 0.25:
            return "-", ()
        path = self.out / rng.choice(["", "deep/er/"]) / name
        return str(path), (path,)

    def next_case(self) -> Case:
        rng = self.rng
        command = rng.choices(
            ["transform", "export", "rebill", "query", "directory", "package", "generate", "lock-archive"],
            weights=[30, 12, 10, 14, 24, 1, 6, 4],
        )[0]
        builder: Callable[[], Case] = getattr(self, f"_case_{command.replace('-', '_')}")
        return builder()

    def _case_transform(self) -> Case:
        rng = self.rng
        source = self._input()
        output, outputs = self._output(f"rows.{rng.choice(['csv', 'json', 'parquet'])}", source)
        argv = ["transform", "--input", source, "--output", output, "--no-progress"]
        if rng.random() < 0.5:
            argv += ["--format", rng.choice(["csv", "json", "parquet", "xml"])]
        if rng.random() < 0.4:
            rejects, more = self._output("rejects.jsonl", source)
            argv += ["--rejects", rejects]
            outputs += more
        if rng.random() < 0.2:
            argv.append("--json")
        stdin = _mutate(rng, (self.inputs / "valid.jsonl").read_bytes()) if source == "-" else b""
        return Case("transform", argv, outputs, stdin)

    def _lake(self) -> str:
        return self.rng.choice(
            [
                str(self.inputs / "lake"),
                str(self.inputs / "badlake"),
                str(self.inputs / "folder"),
                str(self.inputs / "valid.jsonl"),
                str(self.inputs / "nope"),
            ]
        )

    def _case_export(self) -> Case:
        rng = self.rng
        target = self.out / "export"
        argv = [
            "export",
            "--date",
            rng.choice(DATES),
            "--lake",
            self._lake(),
            "--to",
            str(target),
            "--no-progress",
        ]
        if rng.random() < 0.2:
            argv.append("--json")
        return Case("export", argv, (target,))

    def _case_rebill(self) -> Case:
        rng = self.rng
        target = self.out / "rebill"
        raw = rng.choice(
            [
                str(self.inputs / "raw"),
                str(self.inputs / "raw" / "ctr"),
                str(self.inputs / "folder"),
                str(self.inputs / "valid.jsonl"),
            ]
        )
        argv = ["rebill", "--date", rng.choice(DATES), "--raw", raw, "--to", str(target), "--no-progress"]
        if rng.random() < 0.4:
            argv += [
                "--settled",
                rng.choice(
                    [
                        str(self.inputs / "badlake" / "settled"),
                        str(self.inputs / "lake"),
                        str(self.inputs / "folder"),
                    ]
                ),
            ]
        if rng.random() < 0.3:
            argv += ["--window-days", rng.choice(["0", "1", "-3", "99999", "x"])]
        if rng.random() < 0.3:
            argv += ["--jobs", rng.choice(["1", "2", "0", "-1"])]
        return Case("rebill", argv, (target,))

    def _case_lock_archive(self) -> Case:
        rng = self.rng
        bucket = self.raw_bucket or "no-such-bucket"
        raw = rng.choice(
            [
                f"s3://{bucket}",
                f"s3://{bucket}/ctr/",
                f"s3://{bucket}/../..",
                "s3://",
                "s3:///ctr/",
                "s3://no-such-bucket-fuzz",
                str(self.inputs / "raw"),
                "s3://" + "x" * 300,
            ]
        )
        argv = ["lock-archive", "--date", rng.choice(DATES), "--raw", raw]
        if rng.random() < 0.3:
            argv.append("--apply")  # without OBJECT_LOCK_* set: refused, naming them
        if rng.random() < 0.3:
            argv.append("--json")
        return Case("lock-archive", argv)

    def _case_query(self) -> Case:
        rng = self.rng
        argv = ["query", "--lake", self._lake()]
        if rng.random() < 0.2:
            argv += [
                "--named",
                rng.choice(["daily_calls_by_call_type", "latest_billing_rows", "../../etc/passwd", "nope"]),
            ]
        else:
            sql = rng.choice(SQL)
            if rng.random() < 0.3:
                sql = sql.replace("patient_phone", f"'{PHONE}'")
            argv.append(sql)
        if rng.random() < 0.5:
            argv += ["--format", rng.choice(["table", "csv", "json", "html"])]
        return Case("query", argv)

    def _case_directory(self) -> Case:
        rng = self.rng
        common = ["--endpoint-url", self.endpoint or "http://127.0.0.1:9", "--table", self.table or "none"]
        action = rng.choice(["import", "import", "export", "set", "set", "remove"])
        extensions = [
            "101",
            "0101",
            "\u0967\u0966\u0967",
            "\u202e12",
            "123456",
            "",
            "=1",
            "\uff11",
            "4",
            "00004",
            PHONE,
        ]
        agents = ["agent-0001", "agent-0002", "a/b", "", "x" * 200, "agent-\u202e", AGENT]
        if action == "import":
            roll = rng.random()
            if roll < 0.3:
                source = self.inputs / f"directory-mutated-{rng.randrange(3)}.csv"
                source.write_bytes(_mutate(rng, rng.choice(list(DIRECTORY_FILES.values())) or b"agentId"))
                path = str(source)
            elif roll < 0.35:
                path = rng.choice(
                    ["/dev/null", str(self.inputs / "folder"), str(self.inputs / "missing.csv"), "-"]
                )
            else:
                path = str(self.inputs / f"directory-{rng.choice(list(DIRECTORY_FILES))}.csv")
            stdin = rng.choice(list(DIRECTORY_FILES.values())) if path == "-" else b""
            return Case("directory", ["directory", "import", path, *common], (), stdin)
        if action == "export":
            output, outputs = self._output("directory.csv")
            return Case("directory", ["directory", "export", "--output", output, *common], outputs)
        if action == "set":
            argv = ["directory", "set", rng.choice(agents), rng.choice(extensions), *common]
            if rng.random() < 0.5:
                argv += [
                    "--username",
                    rng.choice(["dr.a", "=cmd|' /C calc'!A0", "dr.\u202elive", "x" * 300, "\x1b[2J"]),
                ]
            return Case("directory", argv)
        return Case("directory", ["directory", "remove", rng.choice(agents), *common])

    def _case_package(self) -> Case:
        output, outputs = self._output("packaged.yaml")
        return Case(
            "package",
            ["package", "--template-only", "--output", output, "--build-dir", str(self.out / "build")],
            outputs,
        )

    def _case_generate(self) -> Case:
        rng = self.rng
        if rng.random() < 0.5:
            output, outputs = self._output("ctrs.jsonl")
            outputs += tuple(Path(f"{path}.truth.json") for path in outputs)
            contacts = rng.choice(["1", "5", "0", "-1", "x", "100000000000"])
            if contacts == "100000000000":
                contacts = "3"
            argv = [
                "generate",
                "ctrs",
                "--contacts",
                contacts,
                "--seed",
                str(rng.randrange(100)),
                "--output",
                output,
            ]
            if rng.random() < 0.3:
                argv += ["--mix", rng.choice(["voicemail=1", "x=y", "=", "voicemail=-1,,"])]
            return Case("generate", argv, outputs)
        output, outputs = self._output("event.json")
        kind = rng.choice(["firehose", "contact-flow", "nope"])
        argv = ["generate", "event", kind, "--output", output]
        if kind == "contact-flow":
            argv += ["--function", rng.choice(["lookup-by-extension", "lookup-by-agent"])]
        if rng.random() < 0.6:
            argv += ["--input", self._input()]
        else:
            argv += ["--contacts", "2"]
        return Case("generate", argv, outputs)

    # --- running and checking --------------------------------------------------------------------

    def run(self, seconds: float, max_cases: int | None = None) -> Report:
        deadline = time.monotonic() + seconds
        with _in_sandbox(self.root, self.home):
            while time.monotonic() < deadline and (max_cases is None or self.report.tried < max_cases):
                self.check(self.next_case())
        return self.report

    def check(self, case: Case) -> None:
        report = self.report
        report.tried += 1
        report.by_command[case.command] += 1
        inputs_before = _snapshot(self.inputs)
        everything_before = _snapshot(self.root)
        status, stderr = _call(case)
        report.exit_codes[status] += 1
        if status is None or "Traceback" in stderr:
            report.violations[f"traceback in {case.command}"] += 1
            report.details.append(("traceback", case.argv, stderr[-2000:]))
        if any(marker in stderr for marker in PHI_MARKERS):
            report.violations[f"phi in stderr of {case.command}"] += 1
            report.details.append(("phi", case.argv, stderr[-2000:]))
        inputs_after = _snapshot(self.inputs)
        changed_inputs = {path for path, digest in inputs_before.items() if inputs_after.get(path) != digest}
        # the campaign itself rewrites the mutated inputs before each case: only the fixed ones count
        if any(not path.name.startswith(("mutated-", "directory-mutated-")) for path in changed_inputs):
            report.violations[f"input modified by {case.command}"] += 1
        for path, digest in _snapshot(self.root).items():
            if everything_before.get(path) == digest or path.is_relative_to(self.inputs):
                continue
            if not any(path == output or path.is_relative_to(output) for output in case.outputs):
                report.violations[f"write outside outputs by {case.command}"] += 1
                report.details.append(("write", case.argv, str(path)))
                break
        new_inputs = set(inputs_after) - set(inputs_before)
        if any(not path.name.startswith(("mutated-", "directory-mutated-")) for path in new_inputs):
            report.violations[f"write outside outputs by {case.command}"] += 1
        _clear(self.out)
        for stray in self.root.iterdir():  # keep the sandbox small and the next check exact
            if stray not in (self.inputs, self.out, self.home):
                _remove(stray)


def _call(case: Case) -> tuple[int | None, str]:
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    stderr = io.StringIO()
    stdin = io.TextIOWrapper(io.BytesIO(case.stdin), encoding="utf-8")
    saved = sys.stdin
    sys.stdin = stdin
    status: int | None
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                status = main(case.argv)
            except SystemExit as exit_:
                status = exit_.code if isinstance(exit_.code, int) else 1
            except Exception:
                status = None
                traceback.print_exc(file=stderr)
    finally:
        sys.stdin = saved
    return status, stderr.getvalue()


def _snapshot(root: Path) -> dict[Path, str]:
    found: dict[Path, str] = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            try:
                stat = path.lstat()
                digest = hashlib.sha256(path.read_bytes()).hexdigest() if stat.st_size < 4 << 20 else ""
            except OSError:
                digest = "unreadable"
            found[path] = f"{stat.st_size}:{stat.st_mtime_ns}:{digest}"
    return found


def _clear(folder: Path) -> None:
    for child in folder.iterdir():
        _remove(child)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def _in_sandbox(root: Path, home: Path) -> Iterator[None]:
    saved_cwd = Path.cwd()
    saved_env = dict(os.environ)
    os.chdir(root)
    os.environ["HOME"] = str(home)
    for name in ("DIRECTORY_TABLE", "LEDGER_TABLE", "CSV_COLUMNS"):
        os.environ.pop(name, None)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


def campaign(root: Path, seconds: float, seed: int, endpoint: str | None, table: str | None) -> Report:
    return Campaign(root, seed, endpoint, table).run(seconds)


def report_lines(report: Report) -> list[str]:
    codes = dict(sorted((str(code), count) for code, count in report.exit_codes.items()))
    lines = [report.summary(), f"exit codes: {codes}"]
    if os.environ.get("CLI_FUZZ_DEBUG"):
        lines += [f"{kind}: {argv!r}\n{text}" for kind, argv, text in report.details]
    return lines


__all__ = ["PHONE", "Campaign", "Report", "campaign", "report_lines"]
