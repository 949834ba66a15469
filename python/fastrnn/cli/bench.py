"""fastrnn bench (and `fastrnn` alone): the default model, or named workloads, timed
against every installed peer; then fastrnn's parity against torch."""

from __future__ import annotations

import argparse
import textwrap

from .common import positive_int


def register(sub) -> None:
    from .._bench.peers import PARITY_TOLERANCE, PEERS
    from .._bench.workloads import WORKLOADS

    names = "\n".join(f"  {w.name:<16} {w.describe()}" for w in WORKLOADS.values())
    p = sub.add_parser(
        "bench",
        help="time fastrnn against every installed peer (torch, onnxruntime, openvino, tract)",
        description=textwrap.fill(
            "Times fastrnn and every installed peer side by side, in one process, alternating, "
            "at the same thread count, after checking every peer's output against torch. Prints "
            "each peer's median and p90 time, GFLOP/s and its time relative to fastrnn, then "
            f"fastrnn's parity against torch (PASS within {PARITY_TOLERANCE:g} max abs).",
            88,
        )
        + f"\n\nworkloads:\n{names}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--all", action="store_true", help="every workload but `default` (takes minutes)"
    )
    which.add_argument(
        "--workload",
        nargs="+",
        metavar="NAME",
        choices=list(WORKLOADS),
        help="workloads to run (default: default)",
    )
    p.add_argument(
        "--threads",
        nargs="+",
        type=positive_int,
        metavar="N",
        help="thread counts; every peer gets the same (default: 1 2)",
    )
    p.add_argument(
        "--peers",
        nargs="+",
        metavar="PEER",
        choices=list(PEERS) + ["ort", "ov"],
        help=f"peers to run (default: all installed of {', '.join(PEERS)})",
    )
    p.add_argument(
        "--min-time",
        type=float,
        default=0.5,
        metavar="S",
        help="seconds of timing per peer, workload and thread count (default: 0.5)",
    )
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--markdown", metavar="PATH", help="also write the summary table as markdown")
    p.add_argument("--plot", metavar="PNG", help="also draw a chart (needs matplotlib)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import _bench
    from .._runtime import cpu_info

    names = list(_bench.ALL) if args.all else (args.workload or ["default"])
    threads = tuple(args.threads or _bench.default_threads())
    info = cpu_info()
    print(f"fastrnn {info['version']} · {info['isa']} · {_bench.machine_info()['cpu']}")
    results = _bench.run(
        names,
        threads=threads,
        peers=args.peers,
        min_time=args.min_time,
        progress=None if args.quiet else _bench.print_progress,
    )
    print()
    print(_bench.format_detail(results))
    if len(names) > 1:
        print()
        print(_bench.format_markdown(results))
    else:
        notes = _bench.format_notes(results)
        if notes:
            print()
            print("\n".join(f"note: {n}" for n in notes))
    print()
    lines, ok = _bench.parity_lines(results)
    if ok is None:
        print("parity: not checked, it needs torch (pip install 'fastrnn[torch]')")
    else:
        print("\n".join(lines))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(_bench.to_json(results))
        print(f"wrote {args.json}")
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(_bench.format_markdown(results) + "\n")
        print(f"wrote {args.markdown}")
    if args.plot:
        try:
            _bench.plot(results, args.plot)
            print(f"wrote {args.plot}")
        except ImportError:
            print("no chart: matplotlib is not installed (pip install matplotlib)")
    return 1 if ok is False else 0
