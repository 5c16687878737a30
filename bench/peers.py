"""Peers for `bench.catchup --peers`: other tools doing the same job on the same aisha-api
messages, with programs equivalent to the shipped rules (anchored after aisha-api's optional
logging prefix, so look-alikes inside webhook bodies and notification texts do not count).

- `mtail --one_shot` (Debian's mtail 3.0.0~rc50) on the text file: counters of unknown statuses by
  status, webhooks by status and training type, trainings started and ended (by outcome).
- `fail2ban-regex` (Debian's fail2ban 1.0.2) with its own journal backend,
  `systemd-journal[journalpath=DIR]` and `--journalmatch=_SYSTEMD_UNIT=aisha-api.service`, and a
  failregex for the unknown-status line whose `<F-ID>` is the status; `-o id` prints one id per
  match. fail2ban sees `HOST IDENT[PID]: MESSAGE`, so the regex starts with that.
- `sec` (Debian's sec 2.9.1) on the text file: a Single rule per unknown status; trainings as a
  PairWithWindow (start: the submission or an in_progress report, end: COMPLETED or FAILED of the
  same request_id, window 1h), and the same pairing with contexts (`create training_$1 3600` /
  `delete`), the idiom that stays O(1) per line. sec's windows run on the wall clock, so on a
  file read in seconds no training can stall: only the pairs closed are comparable offline.

The text file is `journalctl -D DIR _SYSTEMD_UNIT=aisha-api.service -o cat > FILE`, the same
command as the journalctl baseline: a text-file tool's "with export" rate adds the two times.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.peerprogs import F2B_REGEX, MTAIL, SEC_CONTEXTS, SEC_PAIR, SEC_SINGLE


@dataclass(slots=True)
class Peer:
    name: str  # as shown in the table
    key: str  # in the JSON
    argv: list[str]
    reads: str  # "journal" or "text"
    parse: Callable[[str], dict[str, Any]]
    check: Callable[[dict[str, Any], dict[str, Any], dict[str, int]], list[str]]
    every_run: bool = True  # False: slow, measured in the first run only
    note: str = ""
    counts: dict[str, Any] = field(default_factory=dict)


def truth_unknown(truth: dict[str, Any]) -> Counter[str]:
    return Counter(u["status"] for u in truth["unknown_statuses"])


def diff(what: str, got: Counter[str], want: Counter[str]) -> list[str]:
    if got == want:
        return []
    return [
        f"{what}: {sum(got.values())}, expected {sum(want.values())}; missing "
        f"{dict(want - got)}, unexpected {dict(got - want)}"
    ]


# --- mtail ------------------------------------------------------------------------------------


def parse_mtail(text: str) -> dict[str, Any]:
    doc = json.loads(text)
    out: dict[str, Any] = {}
    for name, metrics in doc.items():
        values: dict[str, float] = {}
        for m in metrics:
            for lv in m.get("LabelValues", []):
                label = "/".join(lv.get("Labels") or []) or "total"
                values[label] = values.get(label, 0) + lv["Value"]["Value"]
        out[name] = values
    return out


def check_mtail(got: dict[str, Any], truth: dict[str, Any], replay: dict[str, int]) -> list[str]:
    problems = diff(
        "unknown_status_total by status",
        Counter({k: int(v) for k, v in got.get("unknown_status_total", {}).items()}),
        truth_unknown(truth),
    )
    ended = int(sum(got.get("trainings_ended_total", {}).values()))
    if ended != truth["stats"]["emitted_end_lines"]:
        problems.append(f"trainings ended {ended}, truth {truth['stats']['emitted_end_lines']}")
    webhooks = int(sum(got.get("webhooks_total", {}).values()))
    if "webhooks" in replay and webhooks != replay["webhooks"]:
        problems.append(f"webhooks {webhooks}, replay's webhooks rule {replay['webhooks']}")
    launched = int(sum(got.get("trainings_started_total", {}).values()))
    if "trainings_launched" in replay and launched != replay["trainings_launched"]:
        problems.append(f"trainings started {launched}, replay {replay['trainings_launched']}")
    return problems


# --- fail2ban -----------------------------------------------------------------------------------


def parse_ids(text: str) -> dict[str, Any]:
    return {"unknown": dict(Counter(line for line in text.splitlines() if line))}


def check_ids(got: dict[str, Any], truth: dict[str, Any], replay: dict[str, int]) -> list[str]:
    return diff("unknown statuses (ids)", Counter(got["unknown"]), truth_unknown(truth))


# --- sec -------------------------------------------------------------------------------------


def parse_sec(text: str) -> dict[str, Any]:
    unknown: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        kinds[kind] += 1
        if kind == "unknown":
            unknown[rest] += 1
    return {"unknown": dict(unknown), "lines": dict(kinds)}


def check_sec_single(got: dict[str, Any], truth: dict[str, Any], _: dict[str, int]) -> list[str]:
    return diff("unknown statuses", Counter(got["unknown"]), truth_unknown(truth))


def check_sec_pairs(got: dict[str, Any], truth: dict[str, Any], _: dict[str, int]) -> list[str]:
    want = truth["pair_closed"] + len(truth["resolved"])  # every end that found its start
    closed = got["lines"].get("closed", 0)
    problems = []
    if closed != want:
        problems.append(f"pairs closed {closed}, truth pair_closed + resolved {want}")
    if got["lines"].get("stalled", 0):
        problems.append(f"{got['lines']['stalled']} stalled: sec's window is the wall clock")
    return problems


# --- the set --------------------------------------------------------------------------------


def missing_tools() -> list[str]:
    need = {"mtail": "mtail", "fail2ban-regex": "fail2ban", "sec": "sec"}
    out = [f"{tool} (Debian package {pkg})" for tool, pkg in need.items() if not shutil.which(tool)]
    probe = subprocess.run(
        ["/usr/bin/python3", "-c", "import systemd.journal"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        out.append("fail2ban's journal backend needs python3-systemd (Debian package)")
    return out


def make_peers(journal_dir: Path, text: Path, work: Path, slow: bool = True) -> list[Peer]:
    """The peers, their programs written into `work`."""
    progs = work / "mtail"
    progs.mkdir(parents=True, exist_ok=True)
    (progs / "aisha.mtail").write_text(MTAIL, encoding="utf-8")
    for name, body in (("single", SEC_SINGLE), ("pair", SEC_PAIR), ("contexts", SEC_CONTEXTS)):
        (work / f"aisha-{name}.sec").write_text(body, encoding="utf-8")
    return [_mtail(progs, text), _fail2ban(journal_dir), *_sec(work, text, slow)]


def _mtail(progs: Path, text: Path) -> Peer:
    return Peer(
        "`mtail --one_shot` (text file)",
        "mtail",
        [
            "mtail",
            "--one_shot",
            "--one_shot_format",
            "json",
            "--progs",
            str(progs),
            "--logs",
            str(text),
            "--logtostderr",
            "--address",
            "127.0.0.1",
            "--port",
            "0",
        ],
        "text",
        parse_mtail,
        check_mtail,
        note="4 counters; Go, RE2",
    )


def _fail2ban(journal_dir: Path) -> Peer:
    return Peer(
        "`fail2ban-regex` (journal backend)",
        "fail2ban",
        [
            "fail2ban-regex",
            "-o",
            "id",
            "--journalmatch=_SYSTEMD_UNIT=aisha-api.service",
            f"systemd-journal[journalpath={journal_dir}]",
            F2B_REGEX,
        ],
        "journal",
        parse_ids,
        check_ids,
        note="1 failregex; Python, python3-systemd with converters",
    )


def _sec(work: Path, text: Path, slow: bool) -> list[Peer]:
    """sec's Single rule and its two pairings; PairWithWindow (slow) only with `slow`."""

    def sec(name: str) -> list[str]:
        return [
            "sec",
            f"--conf={work / f'aisha-{name}.sec'}",
            f"--input={text}",
            "--notail",
            "--log=/dev/null",
            "--debug=3",
            "--nointevents",
        ]

    peers = [
        Peer(
            "`sec` Single (text file)",
            "sec_single",
            sec("single"),
            "text",
            parse_sec,
            check_sec_single,
            note="1 rule; Perl",
        ),
        Peer(
            "`sec` pairs with contexts (text file)",
            "sec_contexts",
            sec("contexts"),
            "text",
            parse_sec,
            check_sec_pairs,
            note="2 rules, a context per open training",
        ),
    ]
    if slow:
        peers.append(
            Peer(
                "`sec` PairWithWindow (text file)",
                "sec_pair",
                sec("pair"),
                "text",
                parse_sec,
                check_sec_pairs,
                every_run=False,
                note="1 rule; each line is tried against every open operation's end pattern",
            )
        )
    return peers


def export_text(journal_dir: Path, dest: Path) -> None:
    with open(dest, "wb") as out:
        subprocess.run(
            [
                "journalctl",
                f"--directory={journal_dir}",
                "_SYSTEMD_UNIT=aisha-api.service",
                "-o",
                "cat",
            ],
            stdout=out,
            check=True,
        )
