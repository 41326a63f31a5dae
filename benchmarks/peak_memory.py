"""Wall time and peak resident memory of a command *and every process it starts*.

    .venv/bin/python benchmarks/peak_memory.py [--every 2] [--json PATH] -- .venv/bin/dvc repro
    .venv/bin/python benchmarks/record.py repro -- .venv/bin/python benchmarks/peak_memory.py -- .venv/bin/dvc repro

``/usr/bin/time`` reports the largest single process; a pipeline's notebooks run in kernels that
papermill starts, so the figure that matters is the sum over the whole process tree at one
moment. This samples that sum every ``--every`` seconds (psutil) while the command runs and prints
a table of the command's exit status, its wall time and the peak (the command's own output goes to
standard error), so "peak ≤ 10 GB" is measured, not guessed; ``record.py`` puts it in the README.
A sampler misses spikes shorter than its interval; the peak is a lower bound of that size.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time


def tree_rss(pid: int) -> int:
    """Bytes resident in ``pid`` and all its descendants now (processes that vanish mid-read are
    skipped)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def measure(command: list[str], every: float = 2.0) -> dict:
    """Run ``command`` (output passes through) and return its status, wall time and peak tree RSS."""
    start = time.perf_counter()
    # the command's own output goes to standard error: standard output is this tool's table
    proc = subprocess.Popen(command, stdout=sys.stderr)
    peak, samples, done = 0, 0, threading.Event()

    def sample() -> None:
        nonlocal peak, samples
        while not done.is_set():
            peak, samples = max(peak, tree_rss(proc.pid)), samples + 1
            done.wait(every)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    returncode = proc.wait()
    done.set()
    sampler.join()
    return {"command": command, "returncode": returncode, "seconds": time.perf_counter() - start,
            "peak_rss_bytes": peak, "samples": samples, "every_s": every}  # fmt: skip


def table(result: dict) -> str:
    minutes, seconds = divmod(round(result["seconds"]), 60)
    return "\n".join([
        "| measurement | result |", "|---|---|",
        f"| command | `{' '.join(result['command'])}` (exit status {result['returncode']}) |",
        f"| wall time | {minutes} min {seconds:02d} s |",
        f"| peak resident memory, summed over the process tree | **{result['peak_rss_bytes'] / 1e9:.2f} GB** "
        f"({result['samples']} samples, every {result['every_s']:g} s) |",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--every", type=float, default=2.0, help="sampling interval in seconds")
    ap.add_argument("--json", help="also write the result here")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = ap.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        ap.error("no command given (… -- COMMAND [ARGS...])")
    result = measure(command, args.every)
    print(table(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
    return result["returncode"]


if __name__ == "__main__":
    raise SystemExit(main())
