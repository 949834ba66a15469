"""Side-by-side comparison of fastrnn with torch, onnxruntime and openvino over every workload.

    python bench/compare.py                      all workloads, 1 and 2 threads (~10 min)
    python bench/compare.py --workload lat_lstm_256 stream_lstm_256 --min-time 0.5

Writes bench/results.md (machine, versions, the tables), bench/results.json (every record,
the machine limits and bounds) and bench/results.png (the chart), and puts results.md into
bench/README.md between its `results` markers and the summary table into the repository's
README.md between its `results-table` markers. The machine's limits come from limits.py
(bench/limits.json, measured once; --remeasure to measure again). How peers are run, checked
and timed: see the docstring of fastrnn/_bench.py.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time

import limits
from workloads import ALL, PEERS, WORKLOADS
from workloads import runner as _bench

HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(HERE, "README.md")
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
# The repository's README shows the summary table alone, between these markers.
ROOT_README = os.path.join(os.path.dirname(HERE), "README.md")
TABLE_BEGIN, TABLE_END = "<!-- results-table:begin -->", "<!-- results-table:end -->"


def machine_header(machine: dict, lim: dict, args, seconds: float) -> str:
    info = machine["fastrnn"]
    peers = ", ".join(f"{p} {v}" for p, v in machine["peers"].items() if p != "fastrnn" and v)
    missing = [p for p, v in machine["peers"].items() if not v]
    features = ", ".join(k for k, v in info["features"].items() if v)
    command = " ".join(["python bench/compare.py", *sys.argv[1:]])
    caches = lim["caches"]
    lines = [
        f"Run {datetime.date.today().isoformat()} with `{command}` ({seconds / 60:.0f} min).",
        "",
        (
            f"- Machine: {machine['cpu']}, {machine['logical_cpus']} logical CPUs "
            f"({machine['system']}); caches L1d {caches['L1'] >> 10} KiB and L2 "
            f"{caches['L2'] >> 10} KiB per core, L3 {caches['L3'] >> 20} MiB shared."
        ),
        (
            f"- fastrnn {info['version']}, ISA {info['isa']} (available: "
            f"{', '.join(info['available'])}; features: {features or 'none'})."
        ),
        f"- Peers: {peers}" + (f"; not installed: {', '.join(missing)}" if missing else "") + ".",
        (
            f"- Python {machine['python']}, numpy {machine['numpy']}. Threads: "
            f"{', '.join(map(str, args.threads))}; at least {args.min_time:g} s of timed calls "
            "per peer, workload and thread count."
        ),
    ]
    return "\n".join(lines)


def wait_for_quiet(max_seconds: float, say) -> None:
    """Waits (at most max_seconds) until other processes leave the cores alone for 5 s."""
    deadline = time.monotonic() + max_seconds
    while time.monotonic() < deadline:
        meter = _bench.LoadMeter().start()
        time.sleep(5)
        load = meter.stop()
        if load is None or load <= _bench.BUSY:
            return
        say(f"waiting for a quiet machine: other processes use {100 * load:.0f}% of the cores")
    say("the machine stayed busy; running anyway (noisy rows are noted)")


def write_readme(markdown: str, path: str = README, begin: str = BEGIN, end: str = END) -> bool:
    """Replaces the text between the markers begin and end of the file at path (by default
    the results markers of bench/README.md); False if the file or a marker is absent."""
    if not os.path.exists(path):
        return False
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if begin not in text or end not in text:
        return False
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{head}{begin}\n{markdown}\n{end}{tail}")
    return True


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--workload",
        nargs="+",
        choices=list(WORKLOADS),
        metavar="NAME",
        help="default: every workload but `default`",
    )
    p.add_argument(
        "--threads", nargs="+", type=int, default=[1, 2], help="thread counts (default: 1 2)"
    )
    p.add_argument(
        "--peers",
        nargs="+",
        choices=list(PEERS),
        metavar="PEER",
        help="default: every installed peer",
    )
    p.add_argument(
        "--min-time", type=float, default=1.0, help="seconds of timing per peer (default: 1)"
    )
    p.add_argument(
        "--retries",
        type=int,
        default=2,
        help="time a workload again (up to this many times) when other processes were busy",
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="S",
        help="first wait up to S seconds for other processes to leave the cores alone",
    )
    p.add_argument("--remeasure", action="store_true", help="measure the machine's limits again")
    p.add_argument(
        "--out", default=HERE, help="directory for results.md/.json/.png (default: bench/)"
    )
    p.add_argument("--no-readme", action="store_true", help="leave bench/README.md alone")
    args = p.parse_args(argv)
    names = args.workload or list(ALL)
    say = _bench.print_progress

    if args.wait_quiet:
        wait_for_quiet(args.wait_quiet, say)
    lim = limits.load_or_measure(args.remeasure, args.threads, say)
    start = time.perf_counter()
    results = _bench.run(
        names,
        threads=args.threads,
        peers=args.peers,
        min_time=args.min_time,
        progress=say,
        retries=args.retries,
    )
    seconds = time.perf_counter() - start
    machine = _bench.machine_info()
    bounds = limits.bounds_for(names, args.threads, lim)

    parity, _ = _bench.parity_lines(results)
    record_dicts = [vars(r) for r in results]
    markdown = "\n\n".join(
        [
            machine_header(machine, lim, args, seconds),
            "### fastrnn against each peer\n\n" + _bench.format_markdown(results, bounds),
            "![fastrnn vs peers](results.png)",
            "### Lower bounds (see limits.py)\n\n"
            + limits.format_limits(lim)
            + "\n\n"
            + limits.format_bounds(lim, record_dicts, names),
            "### Every peer: median, p90, GFLOP/s, error vs torch\n\n```\n"
            + _bench.format_detail(results)
            + "\n```",
            "### Parity of fastrnn against torch\n\n" + "\n".join(f"- {line}" for line in parity),
        ]
    )
    os.makedirs(args.out, exist_ok=True)
    paths = {ext: os.path.join(args.out, f"results.{ext}") for ext in ("md", "json", "png")}
    with open(paths["md"], "w", encoding="utf-8") as f:
        f.write("# Benchmark results\n\n" + markdown + "\n")
    extra = {
        "limits": lim,
        "bounds_us": {f"{name}@{n}": b for (name, n), b in bounds.items()},
        "seconds": seconds,
    }
    with open(paths["json"], "w", encoding="utf-8") as f:
        f.write(_bench.to_json(results, machine, extra))
    try:
        _bench.plot(results, paths["png"])
    except ImportError:
        paths.pop("png")
        say("no chart: matplotlib is not installed (pip install matplotlib)")
    if not args.no_readme and args.out == HERE and write_readme(markdown):
        paths["readme"] = README
        table = _bench.format_markdown(results, bounds)
        if write_readme(table, ROOT_README, TABLE_BEGIN, TABLE_END):
            paths["root_readme"] = ROOT_README
    print(_bench.format_markdown(results, bounds))
    print("\nwrote " + ", ".join(paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
