"""The suite's own rule for its two processes (tests/conftest.py): a test marked `alone` runs
while the other process waits, and no other test waits for anything but it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import lock_path

TIMED = '''
import time

import pytest


def record(name, seconds):
    started = time.time()
    time.sleep(seconds)
    with open("spans.txt", "a") as spans:
        spans.write(f"{name} {started} {time.time()}\\n")


@pytest.mark.alone
def test_alone():
    record("alone", 1.5)


@pytest.mark.parametrize("number", range(8))
def test_shared(number):
    record(f"shared{number}", 0.4)
'''


def test_a_test_marked_alone_runs_while_the_other_process_waits(tmp_path):
    (tmp_path / "test_timed.py").write_text(TIMED)
    tests = Path(__file__).parent
    run = f"nnlab-suite-lock-{os.getpid()}"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2", "-p", "conftest", "-p", "no:cacheprovider",
                           "-c", os.devnull, "--rootdir", str(tmp_path), "--testrunuid", run, "test_timed.py"],
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tests)}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert not lock_path(run).exists()  # the run's end removed its lock file
    spans = {name: (float(start), float(end)) for name, start, end in
             (line.split() for line in (tmp_path / "spans.txt").read_text().splitlines())}
    alone = spans.pop("alone")
    assert len(spans) == 8
    overlapping = [name for name, (start, end) in spans.items() if start < alone[1] and end > alone[0]]
    assert overlapping == []
    # The shared tests ran two at a time: they are not serialised among themselves.
    assert any(other != name and start < spans[other][1] and end > spans[other][0]
               for name, (start, end) in spans.items() for other in spans)
