"""The test suite (or some of its files) in one process and in two (pytest-xdist's `-n`), one
after the other on the same machine: wall time, the CPU time of pytest and everything it
started, and the cores used on average (CPU time / wall time).

    python benchmarks/suite_processes.py                      # the whole default suite, -n 0 then -n 2
    python benchmarks/suite_processes.py tests/test_transfer.py tests/test_tables.py --processes 0 2

Prints one markdown row per run and the wall-time ratio against the first.
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_suite(files: list[str], processes: int) -> dict:
    """pytest on `files` (the default suite when empty) with `-n processes`, timed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", str(processes),
                           *files], cwd=ROOT, capture_output=True, text=True)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    summary = re.findall(r"^=* ?(\d+ (?:passed|failed)[^=\n]*?) in [\d.]+s", done.stdout, re.MULTILINE)
    return {"processes": processes, "wall": wall, "cpu": cpu, "returncode": done.returncode,
            "summary": summary[-1] if summary else done.stdout[-300:]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", help="test files or node ids (default: the whole default suite)")
    parser.add_argument("--processes", type=int, nargs="+", default=[0, 2], help="values of -n, in order")
    arguments = parser.parse_args()
    print("| -n | tests | wall s | CPU s | cores used | wall against the first |")
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    first = None
    for processes in arguments.processes:
        result = run_suite(arguments.files, processes)
        first = first or result["wall"]
        print(f"| {processes} | {result['summary']} | {result['wall']:.0f} | {result['cpu']:.0f} | "
              f"{result['cpu'] / result['wall']:.2f} | {result['wall'] / first:.2f} |", flush=True)
        if result["returncode"] != 0:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
