"""The README's walk-through, run as written: every answer and log line it shows is what a
fresh service prints (ids, times, process ids and durations aside)."""

import os
import re
import signal
import subprocess

from bench.harness import free_port
from private_sms.settings import ALIASES, DEFAULTS
from tests.service import PROJECT, Service, wait_until_up

README = (PROJECT / "README.md").read_text()
SECTION = README.split("## Try it: a conversation in dry run", 1)[1].split("\n## ", 1)[0]
BLOCKS = re.findall(r"^```(console|log)\n(.*?)^```$", SECTION, re.M | re.S)
# What differs from one run to the next, and how it is written instead.
VARYING = [
    (re.compile(r"\b[0-9a-f]{32}\b"), "<chat id>"),
    (re.compile(r"dry-run-[0-9a-f]{16}"), "dry-run-<id>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00"), "<time>"),
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"), "<time>"),
    (re.compile(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000\] \[\d+\]"), "[<time>] [<pid>]"),
    (re.compile(r"pid: \d+"), "pid: <pid>"),
    (re.compile(r" \(\d+\)$", re.M), " (<pid>)"),
    (re.compile(r" \d+ms$", re.M), " <n>ms"),
    (re.compile(r'"oldestAgeSeconds": [\d.]+'), '"oldestAgeSeconds": <age>'),
]


def normal(text: str) -> str:
    for pattern, written in VARYING:
        text = pattern.sub(written, text)
    return text


def commands_and_answers(block: str) -> list[tuple[str, str]]:
    """Split a console block into its commands and what each printed."""
    steps: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            steps[-1][1].append(line)
    return [(command, "\n".join(lines).strip()) for command, lines in steps]


def lines_in_order(expected: list[str], log: list[str]) -> list[str]:
    """Return the expected lines not found in `log` in that order (each after the last)."""
    position, missing = 0, []
    for line in expected:
        try:
            position = log.index(line, position) + 1
        except ValueError:
            missing.append(line)
    return missing


def test_the_walk_through_prints_what_the_readme_shows(tmp_path):
    kinds = [kind for kind, _ in BLOCKS]
    assert kinds == ["console"] * 3 + ["log", "console", "log", "console", "console", "log"]
    port = free_port()
    here = lambda text: text.replace("localhost:3000", f"localhost:{port}")  # noqa: E731
    # The first terminal: the service (the install line aside: the tests' venv has it all).
    (*setup, (run, startup)) = commands_and_answers(BLOCKS[0][1])
    exports = [command for command, _ in setup if command.startswith("export ")]
    log_file = tmp_path / "service.log"
    # A newcomer's shell: none of the service's settings (the tests' own, SEND_RATE=0, aside).
    unset = {*DEFAULTS, *ALIASES, "WEB_CONCURRENCY"}
    env = {name: value for name, value in os.environ.items() if name not in unset}
    script = "; ".join([*exports, f"export PORT={port}", run])
    with log_file.open("w") as log:
        process = subprocess.Popen(
            ["bash", "-c", script],
            cwd=PROJECT,
            env=env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    try:
        wait_until_up(Service(f"http://127.0.0.1:{port}", log_file, process))
        # The second terminal: each command in one shell, as typed, a moment apart.
        steps = [
            step
            for kind, block in BLOCKS[1:]
            if kind == "console"
            for step in commands_and_answers(block)
        ]
        shell = ["set -u"]
        for n, (command, _) in enumerate(steps):
            shell += [f"echo '@@@ {n}'", here(command), "sleep 0.3"]
        ran = subprocess.run(
            ["bash", "-c", "\n".join(shell)], cwd=tmp_path, env=env, capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip
    finally:
        # The run command is bash's child: stop the whole group, as Ctrl-C would.
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    printed = re.split(r"^@@@ \d+\n", ran.stdout, flags=re.M)[1:]
    actual = [normal(out.strip()).replace(str(port), "3000") for out in printed]
    expected = [normal(answer) for _, answer in steps]
    service_log = [
        normal(line).replace(str(port), "3000") for line in log_file.read_text().splitlines()
    ]
    shown_log = [normal(line) for line in startup.splitlines()] + [
        normal(line) for kind, block in BLOCKS if kind == "log" for line in block.splitlines()
    ]
    if os.environ.get("README_WALK_THROUGH_SAYS"):
        for (command, _), out in zip(steps, printed, strict=True):
            print(f"$ {command}\n{out.strip()}")
        print("\n".join(log_file.read_text().splitlines()))
    assert ran.stderr == ""
    for (command, _), want, got in zip(steps, expected, actual, strict=True):
        assert got == want, command
    assert lines_in_order(shown_log, service_log) == [], "\n".join(service_log)
    assert len(shown_log) > 10
