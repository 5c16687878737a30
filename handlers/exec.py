"""`exec`: run an argv (never a shell) with the event's fields as environment variables."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass

import yaml

from handlers.base import (
    HandlerCommon,
    HandlerDefaults,
    Job,
    Outcome,
    Result,
    RunContext,
    parse_common,
)
from monitor.config.yamlview import View


@dataclass(frozen=True, slots=True)
class ExecSpec(HandlerDefaults):
    """Keys: `argv` (a list; the first item an absolute path). The program gets AISHA_EVENT
    (the event as JSON), AISHA_RULE, AISHA_KIND, AISHA_KEY, AISHA_SEVERITY, AISHA_MESSAGE and
    AISHA_LABEL_<NAME> — log content only ever fills these variables, never the argv. Exit 0 is
    success; a timeout or another exit code is retried."""

    common: HandlerCommon
    argv: tuple[str, ...]

    def run(self, job: Job, ctx: RunContext) -> Result:
        if ctx.dry_run or self.common.dry_run:
            return Result(Outcome.DRY_RUN, f"would run {list(self.argv)}")
        e = job.event
        env = {
            "PATH": "/usr/bin:/bin",
            "AISHA_EVENT": json.dumps(e, ensure_ascii=False),
            "AISHA_RULE": e["rule"],
            "AISHA_KIND": e["kind"],
            "AISHA_KEY": e.get("key") or "",
            "AISHA_SEVERITY": e["severity"],
            "AISHA_MESSAGE": e["message"],
        }
        for name, value in e.get("labels", {}).items():
            if name.isidentifier():
                env[f"AISHA_LABEL_{name.upper()}"] = value
        env = {k: v.replace("\0", "") for k, v in env.items()}  # NUL cannot pass through exec
        try:
            done = subprocess.run(  # noqa: S603 - argv from config only; no shell
                list(self.argv),
                env=env,
                capture_output=True,
                timeout=self.common.timeout_us / 1e6,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            return Result(Outcome.FAILED, f"{self.argv[0]}: timed out", retry=True)
        except OSError as e:
            return Result(Outcome.GAVE_UP, f"{self.argv[0]}: {e.strerror}")
        if done.returncode == 0:
            return Result(Outcome.DONE, f"{self.argv[0]}: exit 0")
        err = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        return Result(
            Outcome.FAILED, f"{self.argv[0]}: exit {done.returncode} {err[0][:200]}", retry=True
        )


def parse(view: View, name: str) -> ExecSpec:
    common = parse_common(view, name)
    argv = view.str_list("argv", required=True)
    if isinstance(view.node_of("argv"), yaml.ScalarNode):
        view.error("argv", "expected a list (the program, then each argument; no shell splits it)")
    elif view.has("argv") and (not argv or not argv[0].startswith("/")):
        view.error("argv", "expected a list whose first item is an absolute path to a program")
    return ExecSpec(common, argv)
