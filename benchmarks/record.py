"""Run a benchmark and put what it printed into the README: no benchmark figure is typed by hand.

    .venv/bin/python benchmarks/record.py NAME [--readme README.md] -- COMMAND [ARGS...]
    make bench    # every benchmark, recorded

The command's standard output (the table it prints) and its JSON (``--json PATH`` is passed
right after the script, so the command must be one of our benchmarks: ``PYTHON SCRIPT [ARGS...]``)
go to ``results/benchmarks/NAME.{txt,json}`` together with when, where and how long it ran; the
README's ``<!-- bench-NAME:start -->`` block is then regenerated from that file. Standard error
passes through (progress of a long run stays visible). A failing benchmark records nothing and
exits with its status.

    benchmarks/record.py repro -- .venv/bin/python benchmarks/peak_memory.py -- .venv/bin/dvc repro
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


REGENERATE = {"repro": "make repro-measured"}  # blocks that `make bench` does not refill


def block(name: str, command: list[str], record: dict) -> str:
    """The README block: what ran, where, when, and the output as printed."""
    shown = " ".join(Path(c).name if c == sys.executable else c for c in command)
    return (f"`{shown}` — {record['machine']}; {record['date']}, {record['seconds']:.0f} s "
            f"(`results/benchmarks/{name}.txt`, `.json`; regenerate: `{REGENERATE.get(name, 'make bench')}`):\n\n"
            f"```text\n{record['output'].rstrip()}\n```\n")  # fmt: skip


def with_json(command: list[str], json_path: Path) -> list[str]:
    """``command`` with ``--json PATH`` right after its script (``PYTHON SCRIPT …``), before any
    ``--`` that hands the rest to another command (``peak_memory.py -- dvc repro``)."""
    return [*command[:2], "--json", str(json_path), *command[2:]]


def save(name: str, command: list[str], seconds: float, output: str, out_dir: Path,
         readme: Path | None, date: datetime | None = None) -> dict:  # fmt: skip
    """Write ``NAME.txt`` (what the benchmark printed) and ``NAME.json`` (its own JSON, already at
    that path, wrapped with when, where and how long it ran), then the README block. ``date``:
    when it finished (now, unless a run measured earlier is being recorded)."""
    from kardia.report import replace_block

    result = {"name": name, "command": command, "machine": machine(),
              "date": (date or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC"), "seconds": seconds,
              "output": output}  # fmt: skip
    (out_dir / f"{name}.txt").write_text(output)
    json_path = out_dir / f"{name}.json"
    if json_path.exists():  # the benchmark's own numbers, with where they were measured
        data = json.loads(json_path.read_text())
        json_path.write_text(json.dumps({"run": {k: v for k, v in result.items() if k != "output"},
                                         "results": data}, indent=1) + "\n")  # fmt: skip
    if readme is not None:
        readme.write_text(replace_block(readme.read_text(), f"bench-{name}", block(name, command, result)))
    return result


def record(name: str, command: list[str], out_dir: Path, readme: Path | None) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{name}.json"
    json_path.unlink(missing_ok=True)  # never wrap a previous run's numbers
    start = time.perf_counter()
    done = subprocess.run(with_json(command, json_path), stdout=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.stderr.write(done.stdout)
        return done.returncode
    save(name, command, seconds, done.stdout, out_dir, readme)
    print(done.stdout, end="")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        print("usage: benchmarks/record.py NAME [--readme README.md] -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    split = argv.index("--")
    ap = argparse.ArgumentParser(prog="benchmarks/record.py")
    ap.add_argument("name")
    ap.add_argument("--readme", default=str(ROOT / "README.md"), help="README to update ('' for none)")
    ap.add_argument("--out-dir", default=str(ROOT / "results" / "benchmarks"))
    args = ap.parse_args(argv[:split])
    command = argv[split + 1 :]
    if not command:
        print("benchmarks/record.py: no command after --", file=sys.stderr)
        return 2
    return record(args.name, command, Path(args.out_dir), Path(args.readme) if args.readme else None)


if __name__ == "__main__":
    raise SystemExit(main())
