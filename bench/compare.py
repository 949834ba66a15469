"""Side-by-side comparison of fastrnn with torch, onnxruntime, openvino and tract over every
workload.

    python bench/compare.py                      all workloads, 1 and 2 threads (~10 min)
    python bench/compare.py --workload lat_lstm_256 stream_lstm_256 --min-time 0.5
    python bench/compare.py --isa avx2           fastrnn's AVX2 path, torch held to AVX2 too
    python bench/compare.py --quick              one small workload, 1 thread, a few seconds;
                                                 writes into a temporary directory
    python bench/compare.py --render bench/results/amd-epyc-zen4-avx512.json
                                                 the tables and chart again, timing nothing

Writes bench/results/<cpu>-<isa>.md (the CPU, its flags and caches, the ISA, versions, the
tables), .json (every record, the machine, its limits and the bounds) and .png (the chart):
<cpu> names this CPU model (e.g. amd-epyc-zen4, from /proc/cpuinfo) and <isa> the instruction
set fastrnn ran, so a run on another CPU or ISA never overwrites these. It then puts the .md
into bench/README.md between its `results` markers, and the summary table, naming the CPU and
ISA, into the repository's README.md between its `results-table` markers. The machine's limits
come from limits.py (bench/limits.json, measured once; --remeasure to measure again; without
g++ the tables have no bounds). How peers are run, checked and timed: see the docstring of
fastrnn/_bench.py.

--isa avx2 or avx512 benchmarks that instruction set on a CPU that has more: it sets
FASTRNN_ISA for fastrnn and, for torch, ONEDNN_MAX_CPU_ISA (oneDNN: torch's LSTM),
MKL_ENABLE_INSTRUCTIONS (MKL: the GEMMs of its GRU and RNN) and ATEN_CPU_CAPABILITY (ATen's
own vector kernels), then runs this script again in a fresh process, since each library reads
its variable once, when it loads. onnxruntime, openvino and tract have no such setting and run
their own choice of kernels (the results say so). --isa auto clears all four; without --isa,
the environment is left as it is. The results record the ISA fastrnn used and torch's.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

import limits
from workloads import ALL, PEERS, WORKLOADS
from workloads import runner as _bench

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS_DIR = limits.RESULTS_DIR
README = os.path.join(HERE, "README.md")
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
# The repository's README shows the summary table alone, between these markers.
ROOT_README = os.path.join(os.path.dirname(HERE), "README.md")
TABLE_BEGIN, TABLE_END = "<!-- results-table:begin -->", "<!-- results-table:end -->"
QUICK_WORKLOAD = "small_lstm_64"  # --quick: the cheapest workload (0.01 GFLOP, ~0.1-1 ms a call)

# What --isa sets (None: removes the variable). oneDNN's AVX512_CORE is AVX-512 F/BW/DQ/VL,
# the set fastrnn's avx512 kernels are built for (no AMX, which fp32 does not use anyway).
ISA_ENVIRONMENT = {
    "auto": dict.fromkeys(_bench.ISA_VARIABLES),
    "avx2": {
        "FASTRNN_ISA": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "ATEN_CPU_CAPABILITY": "avx2",
    },
    "avx512": {
        "FASTRNN_ISA": "avx512",
        "ONEDNN_MAX_CPU_ISA": "AVX512_CORE",
        "MKL_ENABLE_INSTRUCTIONS": "AVX512",
        "ATEN_CPU_CAPABILITY": "avx512",
    },
}


def _kib(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 and n % (1 << 20) == 0 else f"{n >> 10} KiB"


def cpu_title(machine: dict) -> str:
    """ "AMD EPYC (family 25, model 17), Zen 4": the CPU and its core generation when known."""
    gen = machine.get("cpu_generation")
    return machine["cpu"] + (f", {gen}" if gen else "")


def isa_text(machine: dict) -> str:
    """Which ISA fastrnn used, and what torch was held to."""
    info, env = machine["fastrnn"], machine.get("isa_environment", {})
    forced = f"FASTRNN_ISA={env['FASTRNN_ISA']}; " if env.get("FASTRNN_ISA") else ""
    text = f"fastrnn ran **{info['isa']}** ({forced}available: {', '.join(info['available'])})"
    caps = [f"{k}={v}" for k, v in env.items() if k != "FASTRNN_ISA"]
    aten = machine.get("torch_cpu_capability")
    if caps:
        text += f"; torch held to it ({', '.join(caps)}"
        text += f"; ATen reports {aten})" if aten else ")"
        text += "; onnxruntime, openvino and tract pick their own kernels"
    elif aten:
        text += f"; torch unrestricted (ATen reports {aten})"
    return text


def machine_header(doc: dict) -> str:
    """The lines every results file starts with (after its title): the CPU model, its flags,
    its caches and the ISA, then the run, the peers and the versions."""
    machine, lim = doc["machine"], doc.get("limits")
    flags = machine.get("cpu_flags") or {}
    have = [f for f, v in flags.items() if v]
    lack = [f for f, v in flags.items() if not v]
    caches = machine.get("caches") or {}
    if not caches and lim:  # a record from before the machine's caches were kept
        caches = {"L1d": lim["caches"]["L1"], "L2": lim["caches"]["L2"], "L3": lim["caches"]["L3"]}
    cache_text = ", ".join(
        f"{level} {_kib(caches[level])}{' per core' if level in ('L1d', 'L2') else ' shared'}"
        for level in ("L1d", "L2", "L3")
        if level in caches
    )
    peers = ", ".join(f"{p} {v}" for p, v in machine["peers"].items() if p != "fastrnn" and v)
    missing = [p for p, v in machine["peers"].items() if not v]
    info = machine["fastrnn"]
    features = ", ".join(k for k, v in info["features"].items() if v)
    threads = ", ".join(map(str, doc["threads"]))
    took = f"{doc['seconds'] / 60:.0f} min" if doc["seconds"] >= 60 else f"{doc['seconds']:.0f} s"
    flag_text = ", ".join(have) or "none of these"
    if lack:
        flag_text += f"; not: {', '.join(lack)}"
    lines = [
        f"- CPU: {cpu_title(machine)}; {machine['logical_cpus']} logical CPUs ({machine['system']}).",
        f"- Flags: {flag_text if flags else 'not recorded'}.",
        f"- Caches: {cache_text or 'not recorded'}.",
        f"- ISA: {isa_text(machine)}. CPU features fastrnn {info['version']} saw: {features or 'none'}.",
        *([f"- Note: {doc['note']}"] if doc.get("note") else []),
        "",
        f"Run {doc['date']} with `{doc['command']}` ({took}).",
        "",
        f"- Peers: {peers or 'none'}"
        + (f"; not installed: {', '.join(missing)}" if missing else "")
        + ".",
        (
            f"- Python {machine['python']}, numpy {machine['numpy']}. Threads: {threads}; at "
            f"least {doc['min_time']:g} s of timed calls per peer, workload and thread count."
        ),
    ]
    return "\n".join(lines)


def render_markdown(doc: dict, image: str | None) -> str:
    """The results file's body (without its title): header, tables, chart, bounds, detail and
    parity. image: the chart's path as the page that shows it sees it (None: no chart)."""
    results = [_bench.Result(**r) for r in doc["results"]]
    names = list(dict.fromkeys(r.workload for r in results))
    bounds = {tuple(k.rsplit("@", 1)): v for k, v in doc.get("bounds_us", {}).items()}
    bounds = {(name, int(n)): v for (name, n), v in bounds.items()}
    lim, isa = doc.get("limits"), doc["machine"]["fastrnn"]["isa"]
    parity, _ = _bench.parity_lines(results)
    parts = [
        machine_header(doc),
        "### fastrnn against each peer\n\n" + _bench.format_markdown(results, bounds or None),
    ]
    if image:
        parts.append(f"![fastrnn vs peers]({image})")
    if lim:
        parts.append(
            "### Lower bounds (see limits.py)\n\n"
            + limits.format_limits(lim)
            + "\n\n"
            + limits.format_bounds(lim, doc["results"], names, isa)
        )
    parts.append(
        "### Every peer: median, p90, GFLOP/s, error vs torch\n\n```\n"
        + _bench.format_detail(results)
        + "\n```"
    )
    if parity:
        parts.append(
            "### Parity of fastrnn against torch\n\n" + "\n".join(f"- {line}" for line in parity)
        )
    return "\n\n".join(parts)


def write_readme(markdown: str, path: str = README, begin: str = BEGIN, end: str = END) -> bool:
    """The results section of bench/README.md (or the given markers of another file)."""
    return _bench.section_replace(path, begin, end, markdown)


def write_outputs(doc: dict, out: str, readme: bool, say) -> list:
    """<stem>.md and .png in out (the .json is the caller's), and, when readme, the results
    into bench/README.md and the summary table into README.md. Returns the paths written."""
    stem = limits.results_stem(doc["machine"])
    results = [_bench.Result(**r) for r in doc["results"]]
    png = os.path.join(out, f"{stem}.png")
    try:
        _bench.plot(results, png, title=f"fastrnn ({doc['machine']['fastrnn']['isa']}) vs peers")
        paths = [png]
    except ImportError:
        png, paths = None, []
        say("no chart: matplotlib is not installed (pip install matplotlib)")
    title = f"# Benchmark results: {cpu_title(doc['machine'])}, fastrnn {doc['machine']['fastrnn']['isa']}"
    md = os.path.join(out, f"{stem}.md")
    with open(md, "w", encoding="utf-8") as f:
        f.write(title + "\n\n" + render_markdown(doc, png and f"{stem}.png") + "\n")
    paths.insert(0, md)
    if readme:
        rel = os.path.relpath(out, HERE).replace(os.sep, "/")
        if write_readme(render_markdown(doc, png and f"{rel}/{stem}.png")):
            paths.append(README)
        if write_readme(summary(doc, png), ROOT_README, TABLE_BEGIN, TABLE_END):
            paths.append(ROOT_README)
    return paths


def summary(doc: dict, png: str | None) -> str:
    """The repository README's block: where the table is from (CPU, ISA, date, file), the
    table, the chart."""
    root = os.path.dirname(HERE)
    machine = doc["machine"]
    stem = limits.results_stem(machine)
    md = os.path.relpath(os.path.join(RESULTS_DIR, f"{stem}.md"), root).replace(os.sep, "/")
    results = [_bench.Result(**r) for r in doc["results"]]
    bounds = {tuple(k.rsplit("@", 1)): v for k, v in doc.get("bounds_us", {}).items()}
    bounds = {(name, int(n)): v for (name, n), v in bounds.items()}
    lines = [
        (
            f"On {cpu_title(machine)}, {isa_text(machine)}; run {doc['date']} "
            f"([`{md}`]({md}), which also has the CPU's flags and caches)."
        ),
        "",
        _bench.format_markdown(results, bounds or None),
    ]
    if png:
        rel = os.path.relpath(png, root).replace(os.sep, "/")
        lines += ["", f"![fastrnn against each peer: peer time ÷ fastrnn time per workload]({rel})"]
    return "\n".join(lines)


def _rerun_with_isa(isa: str, argv: list) -> int | None:
    """Runs this script again with --isa's environment unless it is already in place (then
    None). The ISA must be one this CPU has."""
    want = ISA_ENVIRONMENT[isa]
    if all(os.environ.get(k) == v for k, v in want.items()):
        return None
    available = _bench.machine_info()["fastrnn"]["available"]
    if isa != "auto" and isa not in available:
        print(
            f"bench/compare.py: --isa {isa}: this CPU runs {', '.join(available)}", file=sys.stderr
        )
        return 2
    env = {k: v for k, v in os.environ.items() if k not in want}
    env.update({k: v for k, v in want.items() if v is not None})
    print(
        "compare: running again with "
        + (" ".join(f"{k}={v}" for k, v in want.items() if v) or "no ISA caps"),
        file=sys.stderr,
        flush=True,
    )
    return subprocess.call([sys.executable, os.path.abspath(__file__), *argv], env=env)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--workload",
        nargs="+",
        choices=list(WORKLOADS),
        metavar="NAME",
        help="default: every workload but `default`",
    )
    p.add_argument("--threads", nargs="+", type=int, help="thread counts (default: 1 2)")
    p.add_argument(
        "--peers",
        nargs="+",
        choices=list(PEERS),
        metavar="PEER",
        help="default: every installed peer",
    )
    p.add_argument("--min-time", type=float, help="seconds of timing per peer (default: 1)")
    p.add_argument(
        "--retries",
        type=int,
        help="time a workload again (up to this many times, default 2) when other processes "
        "were busy",
    )
    p.add_argument(
        "--isa",
        choices=list(ISA_ENVIRONMENT),
        help="the ISA to benchmark: fastrnn's and torch's (see above); default: the environment's",
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="S",
        help="first wait up to S seconds for other processes to leave the cores alone",
    )
    p.add_argument("--remeasure", action="store_true", help="measure the machine's limits again")
    p.add_argument("--out", help="directory for the results files (default: bench/results)")
    p.add_argument("--no-readme", action="store_true", help="leave the READMEs alone")
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"a smoke run: {QUICK_WORKLOAD} (unless --workload), 1 thread, no minimum time, "
        "no retries, limits measured roughly; into a temporary directory (unless --out), "
        "READMEs left alone",
    )
    p.add_argument(
        "--render",
        metavar="JSON",
        help="time nothing: write the .md and .png of this results .json again (next to it, "
        "or into --out), and the READMEs when it is in bench/results",
    )
    args = p.parse_args(argv)
    say = _bench.print_progress
    if args.render:
        return render(args, say)
    if args.isa:
        code = _rerun_with_isa(args.isa, argv)
        if code is not None:
            return code
        if args.isa != "auto" and _bench.machine_info()["fastrnn"]["isa"] != args.isa:
            print(f"bench/compare.py: fastrnn did not take --isa {args.isa}", file=sys.stderr)
            return 2
    if args.quick:
        args.workload = args.workload or [QUICK_WORKLOAD]
        args.threads = args.threads or [1]
        args.min_time = 0.0 if args.min_time is None else args.min_time
        args.retries = 0 if args.retries is None else args.retries
        args.out = args.out or tempfile.mkdtemp(prefix="fastrnn-compare-")
        args.no_readme = True
    names = args.workload or list(ALL)
    threads = args.threads or [1, 2]
    min_time = 1.0 if args.min_time is None else args.min_time
    out = os.path.abspath(args.out or RESULTS_DIR)

    if args.wait_quiet:
        _bench.wait_for_quiet(args.wait_quiet, say=say)
    try:
        lim = limits.load_or_measure(
            args.remeasure, threads, say, 1 if args.quick else limits.REPEAT
        )
    except limits.NoCompiler as e:
        say(f"no lower bounds: {e}")
        lim = None
    start = time.perf_counter()
    results = _bench.run(
        names,
        threads=threads,
        peers=args.peers,
        min_time=min_time,
        progress=say,
        retries=2 if args.retries is None else args.retries,
    )
    seconds = time.perf_counter() - start
    machine = _bench.machine_info()  # after the run: torch's ISA is known once it is loaded
    isa = machine["fastrnn"]["isa"]
    bounds = limits.bounds_for(names, threads, lim, isa) if lim else {}
    extra = {
        "limits": lim,
        "bounds_us": {f"{name}@{n}": b for (name, n), b in bounds.items()},
        "seconds": seconds,
        "date": datetime.date.today().isoformat(),
        "command": " ".join(["python bench/compare.py", *argv]),
        "threads": threads,
        "min_time": min_time,
        "requested_isa": args.isa,
    }
    text = _bench.to_json(results, machine, extra)
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, limits.results_stem(machine) + ".json")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    doc = json.loads(text)
    readme = not args.no_readme and out == os.path.abspath(RESULTS_DIR)
    paths = write_outputs(doc, out, readme, say) + [path]
    print(_bench.format_markdown(results, bounds or None))
    print("\nwrote " + ", ".join(paths))
    return 0


def render(args, say) -> int:
    """--render: the outputs of a results .json again, with this file's formatting."""
    with open(args.render, encoding="utf-8") as f:
        doc = json.load(f)
    out = os.path.abspath(args.out or os.path.dirname(os.path.abspath(args.render)))
    readme = not args.no_readme and out == os.path.abspath(RESULTS_DIR)
    paths = write_outputs(doc, out, readme, say)
    print("wrote " + ", ".join(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
