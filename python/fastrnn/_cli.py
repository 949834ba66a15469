"""The `fastrnn` command line.

    fastrnn                      same as `fastrnn bench`: the default model against every peer
    fastrnn bench [--all | --workload NAME ...] [--threads 1 2] [--json PATH] [--plot PNG]
    fastrnn info                 version, instruction sets, CPU features, threads, caches
    fastrnn verify MODEL_FILE    a fastrnn file or torch state_dict against torch (_cli_model)
    fastrnn convert IN OUT       a torch state_dict file to a fastrnn file (_cli_model)

Each subcommand is a pair of functions: `_add_<name>(subparsers)` declares its arguments and
points at `cmd_<name>(args) -> exit code`. To add one, write the pair and list the first in
COMMANDS. Long work reports progress on stderr; results go to stdout.
"""

from __future__ import annotations

import argparse
import sys
import textwrap

from . import _bench
from ._cli_model import add_subcommands as _add_model_commands


def _progress(args):
    return None if getattr(args, "quiet", False) else _bench.print_progress


# --- fastrnn info ----------------------------------------------------------------------------


def _add_info(sub) -> None:
    p = sub.add_parser(
        "info",
        help="version, instruction set in use and available, CPU features, threads, caches",
        description="Shows fastrnn's version, the instruction set in use and those this CPU can "
        "run, the CPU features fastrnn detected, the thread count, the cache sizes and the "
        "blocking derived from them, and which peers are installed.",
    )
    p.set_defaults(func=cmd_info)


def _bytes(n: int) -> str:
    """1048576 → '1 MiB', 49152 → '48 KiB', 1500 → '1500 B'."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % (size // 16) == 0:
            return f"{n / size:g} {unit}"
    return f"{n} B"


def _caches_lines(caches: dict, blocking: dict) -> list[str]:
    def level(name: str, key: str) -> str:
        shared = caches[f"{key}_shared_by"]
        by = "" if shared is None else f" ({shared} CPU{'s' if shared > 1 else ''})"
        return f"{name} {_bytes(caches[key])}{by}"

    near = "the L3" if blocking["near_cache"] == "l3" else "each core's L2 (per thread)"
    l1d, l2, l3 = level("L1d", "l1d"), level("L2", "l2"), level("L3", "l3")
    gx, span = _bytes(4 * blocking["gx_chunk_floats"]), _bytes(4 * blocking["span_floats"])
    large = _bytes(4 * blocking["large_w_ih_floats"])
    ahead = _bytes(blocking["ahead_max_weight_bytes"])
    return [
        f"caches         {l1d}, {l2}, {l3} per instance, from {caches['source']}",
        "               (FASTRNN_CACHE_L1D / _L2 / _L3 to override: bytes, or 512K, 2M)",
        f"blocking       G_x chunk {gx}, layer span {span}, weights kept in {near}:",
        f"               chunks grow from a W_ih of {large}, batch 1 projects ahead up to {ahead}",
    ]


def cmd_info(args) -> int:
    from . import cpu_info

    info = cpu_info()
    machine = _bench.machine_info()
    features = ", ".join(k for k, v in info["features"].items() if v) or "none"
    print(f"fastrnn        {info['version']}")
    print(f"cpu            {machine['cpu']}")
    print(f"isa in use     {info['isa']}   (FASTRNN_ISA=scalar|avx2|avx512|neon to force another)")
    print(f"isa available  {', '.join(info['available'])}")
    print(f"cpu features   {features}")
    t = info["tiles"]
    print(
        f"kernel tiles   GEMM {t['gemm']}, step {t['step']} (batch 1: {t['step_batch1']}), "
        f"rows x floats; {t['vector_floats']} floats per register"
    )
    th = info["threads"]
    quota = f", cgroup quota {th['cgroup_cpus']:g} CPUs" if th["cgroup_cpus"] else ""
    print(
        f"threads        budget {th['budget']} (from {th['source']}); CPUs this process may "
        f"use {th['cpus']} (affinity {th['affinity_cpus']}{quota})"
    )
    if th["ignored"]:
        print(f"               ignored: {th['ignored']}")
    for line in _caches_lines(info["caches"], info["blocking"]):
        print(line)
    print(f"python, numpy  {machine['python']}, {machine['numpy']}")
    for peer, version in machine["peers"].items():
        if peer != "fastrnn":
            print(f"{peer:<15}{version or 'not installed'}")
    return 0


# --- fastrnn bench ---------------------------------------------------------------------------


def _add_bench(sub) -> None:
    names = "\n".join(f"  {w.name:<16} {w.describe()}" for w in _bench.WORKLOADS.values())
    p = sub.add_parser(
        "bench",
        help="time fastrnn against every installed peer (torch, onnxruntime, openvino, tract)",
        description=textwrap.fill(
            "Times fastrnn and every installed peer side by side, in one process, alternating, "
            "at the same thread count, after checking every peer's output against torch. Prints "
            "each peer's median and p90 time, GFLOP/s and its time relative to fastrnn, then "
            f"fastrnn's parity against torch (PASS within {_bench.PARITY_TOLERANCE:g} max abs).",
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
        choices=list(_bench.WORKLOADS),
        help="workloads to run (default: default)",
    )
    p.add_argument(
        "--threads",
        nargs="+",
        type=_positive_int,
        metavar="N",
        help="thread counts; every peer gets the same (default: 1 2)",
    )
    p.add_argument(
        "--peers",
        nargs="+",
        metavar="PEER",
        choices=list(_bench.PEERS) + ["ort", "ov"],
        help=f"peers to run (default: all installed of {', '.join(_bench.PEERS)})",
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
    p.set_defaults(func=cmd_bench)


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {n}")
    return n


def cmd_bench(args) -> int:
    from . import cpu_info

    names = list(_bench.ALL) if args.all else (args.workload or ["default"])
    threads = tuple(args.threads or _bench.default_threads())
    info = cpu_info()
    print(f"fastrnn {info['version']} · {info['isa']} · {_bench.machine_info()['cpu']}")
    results = _bench.run(
        names, threads=threads, peers=args.peers, min_time=args.min_time, progress=_progress(args)
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


# --- entry point -----------------------------------------------------------------------------

# Each entry declares one subcommand (`fastrnn` alone runs `bench`).
COMMANDS = [_add_bench, _add_info, _add_model_commands]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastrnn",
        description="fastrnn: fast CPU inference of LSTM, GRU and RNN layers with PyTorch's "
        "semantics. Without a command, runs `fastrnn bench`.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["bench"])
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
