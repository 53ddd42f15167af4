"""The benchmark runs end to end (a small run): it starts everything, checks exactly-once,
and reports. Its figures are for people; no test asserts a timing."""

import subprocess
import sys

from tests.service import PROJECT


def test_a_small_benchmark_run_relays_every_text_once_and_reports():
    command = [sys.executable, "-m", "bench", "--runs", "1", "--webhooks", "150", "--chats", "5"]
    result = subprocess.run(
        [*command, "--only", "memory"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "| case | acks/s | texts delivered/s | ack p50 ms |" in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith("| memory")]
    assert len(rows) == 2  # 0 ms and 100 ms stand-in
    assert "at least 900 texts delivered/s" in result.stdout  # targets reported, met or not
