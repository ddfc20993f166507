"""`make bench`: every benchmark in bench/, one after the other, against PostgreSQL and Redis; writes bench/RESULTS.md.

    .venv/bin/python bench/run.py [--quick] [--only bench/system.py ...] [--out bench/RESULTS.md]

Each benchmark is run as its own process, the way it is run by hand, and prints its figures next to the baseline
it measured in the same run, their ratio and the goal; RESULTS.md keeps that output under the machine it ran on.
`--quick` runs each with small sizes, to check the benchmarks work (its figures say nothing about speed); `--only`
runs the ones named and replaces their sections in RESULTS.md, saying when. Needs PostgreSQL and Redis on 127.0.0.1
and `wrk` (apt-get install wrk); takes about 50 minutes in full.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (script, what it measures, the arguments of --quick)
BENCHES = [
    ("bench/home.py", "Home with 2 million transfers next to Home with ten", ["--big", "20000"]),
    (
        "bench/log.py",
        "the Log at 5 million transfers; a purge of 1 million beside intake",
        ["--rows", "50000", "--big", "20000", "--purge", "5000"],
    ),
    (
        "bench/webhooks.py",
        "webhook intake under gunicorn next to a bare view",
        ["--seconds", "2", "--deliveries", "200"],
    ),
    (
        "bench/transfers.py",
        "orders through the pipeline next to a skeleton doing the same I/O",
        ["--orders", "100"],
    ),
    (
        "bench/dinero.py",
        "a burst to one Dinero organisation within its rate limit, another tenant beside it at its normal latency",
        ["--orders", "40", "--others", "10", "--window", "1"],
    ),
    (
        "bench/system.py",
        "the whole system, 50 shops, one of them on Black Friday: busy against quiet shops, exactly once",
        ["--integrations", "5", "--seconds", "5", "--busy-rate", "8", "--quiet-rate", "2"],
    ),
]


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor() or "unknown CPU",
    )
    memory = next(
        (
            int(line.split()[1]) // 1024**2
            for line in Path("/proc/meminfo").read_text().splitlines()
            if "MemTotal" in line
        ),
        0,
    )

    def version(command: list[str]) -> str:
        try:
            return (
                subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - fixed commands
                .stdout.strip()
                .splitlines()[0]
            )
        except (OSError, IndexError):
            return "not found"

    postgres = version(["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc", "SHOW server_version"])
    redis = version(["redis-server", "--version"])
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory} GiB; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}; PostgreSQL {postgres}; {redis}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: check the benchmarks run")
    parser.add_argument("--only", nargs="+", metavar="SCRIPT", choices=[script for script, _, _ in BENCHES])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    if args.only and args.quick and args.out.exists():
        parser.error(
            f"--quick figures mean nothing: they do not replace those in {args.out} (give --out a new file)"
        )
    started = datetime.now(UTC)
    sections = []
    failed = []
    for script, what, quick in BENCHES:
        if args.only and script not in args.only:
            continue
        print(f"== {script}: {what}", flush=True)
        began = time.monotonic()
        result = subprocess.run(  # noqa: S603 - our own scripts
            [sys.executable, "-u", script, *(quick if args.quick else [])],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        # gunicorn's arbiter reports the workers the benchmarks stop: not part of the figures.
        output = "\n".join(line for line in result.stdout.splitlines() if "was sent SIGTERM" not in line).strip()
        print(output, flush=True)
        if result.returncode:
            failed.append(script)
            print(result.stderr[-3000:], file=sys.stderr, flush=True)
            output += f"\n(exited with {result.returncode})"
        minutes = (time.monotonic() - began) / 60
        sections.append(f"## {script}\n\n{what}; {minutes:.0f} min.\n\n```\n{output}\n```\n")
    if args.only and args.out.exists():
        args.out.write_text("\n".join(replaced(args.out.read_text(), sections, f"{started:%Y-%m-%d %H:%M} UTC")))
        print(f"updated {', '.join(args.only)} in {args.out}")
        if failed:
            raise SystemExit(f"failed: {', '.join(failed)}")
        return
    header = (
        "# Benchmark results\n\n"
        f"`make bench`{' --quick (sizes too small to mean anything)' if args.quick else ''}, "
        f"{started:%Y-%m-%d %H:%M} UTC, on {machine()}.\n"
        "Every figure is printed next to its baseline measured in the same run, with the ratio and the goal.\n"
    )
    args.out.write_text("\n".join([header, *sections]))
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


def replaced(results: str, new: list[str], when: str) -> list[str]:
    """The sections of an existing RESULTS.md (its header first) with those in `new` put in their place."""
    header, *old = results.split("\n## ")
    by_script = {section.split("\n", 1)[0]: "## " + section for section in old}
    for section in new:
        script = section.split("\n", 1)[0].removeprefix("## ")
        by_script[script] = section.replace("\n\n", f"\n\nRun on its own, {when}: ", 1)
    return [header.rstrip() + "\n", *by_script.values()]


if __name__ == "__main__":
    main()
