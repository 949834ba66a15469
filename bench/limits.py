"""This machine's limits, and each workload's lower bound on it.

    python bench/limits.py               measure (or reuse bench/limits.json) and print the
                                         bound of every workload, and fastrnn's distance to
                                         it when bench/results.json exists
    python bench/limits.py --remeasure   measure again and rewrite bench/limits.json

The measurement: limits_probe.cc (next to this file), compiled at run time with the system
g++ into a temporary directory, runs at 1 and 2 threads
- the peak fp32 FMA rate: independent chains of FMAs on the widest vectors the CPU has;
- the read bandwidth of L1, L2, L3 and DRAM: each thread sums its own buffer, sized to sit in
  that level (half of L1d, half of L2, a share of L3 at least twice L2, four times L3).
Each figure is the best of several runs (noise only ever makes a run slower), counting only
runs during which other processes left the cores alone.

The lower bound of a workload at n threads (issue 4, item 3):

    bound = max(FLOPs / peak(n),  T · Σ|W_hh| / bandwidth(n, level))

FLOPs count the matrix products (see fastrnn._bench). Σ|W_hh| is the fp32 size of every W_hh
of the stack (all layers and directions): each time step must read all of it. `level` is the
smallest cache whose capacity holds Σ|W_hh| (L1 and L2 count n cores' worth, L3 is shared);
else DRAM. Streaming workloads call one step at a time, so the input projection cannot be
batched over time either: their bytes per step and working set are Σ(|W_ih| + |W_hh|).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PROBE_SOURCE = os.path.join(HERE, "limits_probe.cc")
LIMITS_JSON = os.path.join(HERE, "limits.json")
RESULTS_JSON = os.path.join(HERE, "results.json")
LEVELS = ("L1", "L2", "L3", "DRAM")

from workloads import WORKLOADS, format_time, runner  # noqa: E402  (after the constants above)


def _read_text(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def cache_sizes() -> dict:
    """{"L1": bytes per core, "L2": bytes per core, "L3": bytes shared} from sysfs (Linux);
    common sizes (48 KiB, 1 MiB, 32 MiB) where it is missing."""
    sizes = {"L1": 48 << 10, "L2": 1 << 20, "L3": 32 << 20}
    for index in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*"):
        try:
            level, kind, text = (
                _read_text(os.path.join(index, key)) for key in ("level", "type", "size")
            )
        except OSError:
            continue
        if kind == "Instruction":
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1], 1)
        sizes[f"L{level}"] = int(text.rstrip("KMG")) * scale
    return sizes


def _read_sizes(caches: dict, threads: int) -> dict:
    """Bytes per thread for the read test of each level."""
    return {
        "L1": caches["L1"] // 2,
        "L2": caches["L2"] // 2,
        "L3": max(2 * caches["L2"], caches["L3"] // (2 * threads)),
        "DRAM": 4 * caches["L3"],
    }


def measure(threads=(1, 2), repeat: int = 3, say=print) -> dict:
    """Compiles and runs the probe; returns {"caches", "fma_gflops": {n: ...},
    "read_gbps": {level: {n: ...}}} (keys are strings in JSON)."""
    gxx = shutil.which("g++") or shutil.which("c++")
    if gxx is None:
        raise RuntimeError("bench/limits.py needs a C++ compiler (g++) to build limits_probe.cc")
    caches = cache_sizes()
    out = {
        "caches": caches,
        "fma_gflops": {},
        "read_gbps": {level: {} for level in LEVELS},
        "noisy": [],
    }
    with tempfile.TemporaryDirectory(prefix="fastrnn-limits-") as tmp:
        exe = os.path.join(tmp, "limits_probe")
        subprocess.run([gxx, "-O2", "-std=c++17", "-pthread", PROBE_SOURCE, "-o", exe], check=True)

        def probe(*args) -> float:
            """Best of `repeat` runs taken while other processes left the cores alone (at most
            4·repeat tries; if none was quiet, the best of all, and the figure is noted)."""
            quiet, noisy = [], []
            for _ in range(4 * repeat):
                meter = runner.LoadMeter().start()
                value = float(
                    subprocess.run(
                        [exe, *map(str, args)], check=True, capture_output=True, text=True
                    ).stdout
                )
                load = meter.stop()
                (quiet if load is None or load <= runner.BUSY else noisy).append(value)
                if len(quiet) == repeat:
                    break
            if not quiet:
                out["noisy"].append(" ".join(map(str, args)))
            return max(quiet or noisy)

        for n in threads:
            say(f"limits: FMA peak at {n} thread(s)")
            out["fma_gflops"][str(n)] = probe("fma", n)
            for level, size in _read_sizes(caches, n).items():
                say(f"limits: {level} read bandwidth at {n} thread(s), {size >> 10} KiB per thread")
                out["read_gbps"][level][str(n)] = probe("read", n, size)
    return out


def load_or_measure(remeasure: bool = False, threads=(1, 2), say=print) -> dict:
    """bench/limits.json when it exists, was measured on this CPU and covers `threads`, else
    a fresh measurement (written there, with the CPU's name)."""
    cpu = runner.machine_info()["cpu"]
    if not remeasure and os.path.exists(LIMITS_JSON):
        with open(LIMITS_JSON) as f:
            limits = json.load(f)
        if limits.get("cpu") != cpu:
            say(
                f"limits: {LIMITS_JSON} was measured on {limits.get('cpu', 'an unknown CPU')}, "
                f"this is {cpu}: measuring again"
            )
        elif all(str(n) in limits["fma_gflops"] for n in threads):
            return limits
    limits = measure(threads, say=say)
    limits["cpu"] = cpu
    with open(LIMITS_JSON, "w") as f:
        json.dump(limits, f, indent=2)
    return limits


def lower_bound(w, limits: dict, threads: int) -> dict:
    """{"bound_us", "flop_us", "read_us", "level"}: workload w's lower bound at `threads`."""
    n = str(threads)
    flop_us = w.flops() / (limits["fma_gflops"][n] * 1e3)
    per_step = w.w_hh_bytes() + (w.w_ih_bytes() if w.streaming else 0)
    caches = limits["caches"]
    capacity = {"L1": threads * caches["L1"], "L2": threads * caches["L2"], "L3": caches["L3"]}
    level = next((lv for lv in ("L1", "L2", "L3") if per_step <= capacity[lv]), "DRAM")
    read_us = w.T * per_step / (limits["read_gbps"][level][n] * 1e3)
    return {
        "bound_us": max(flop_us, read_us),
        "flop_us": flop_us,
        "read_us": read_us,
        "level": level,
    }


def bounds_for(names, thread_counts, limits: dict) -> dict:
    """{(workload, threads): bound in µs}, the shape fastrnn._bench.format_markdown takes."""
    return {
        (name, n): lower_bound(WORKLOADS[name], limits, n)["bound_us"]
        for name in names
        for n in thread_counts
    }


def format_limits(limits: dict) -> str:
    threads = sorted(limits["fma_gflops"], key=int)
    caches = limits["caches"]
    head = "| | " + " | ".join(f"{n} thread{'s' if int(n) > 1 else ''}" for n in threads) + " |"
    lines = [head, "|---|" + "--:|" * len(threads)]
    lines.append(
        "| peak fp32 FMA, GFLOP/s | "
        + " | ".join(f"{limits['fma_gflops'][n]:.0f}" for n in threads)
        + " |"
    )
    for level in LEVELS:
        size = (
            f" ({caches[level] >> 10} KiB{' per core' if level in ('L1', 'L2') else ''})"
            if level in caches
            else ""
        )
        lines.append(
            f"| {level}{size} read, GB/s | "
            + " | ".join(f"{limits['read_gbps'][level][n]:.0f}" for n in threads)
            + " |"
        )
    if limits.get("noisy"):
        lines.append("")
        lines.append(
            f"Measured while other processes were busy (may read low): {', '.join(limits['noisy'])}."
        )
    return "\n".join(lines)


def format_bounds(limits: dict, results: list | None = None, names=None) -> str:
    """A markdown table: each workload's bound at each thread count, what sets it, and
    (given results records as dicts) fastrnn's median and its ratio to the bound."""
    fastrnn = {}
    for r in results or []:
        if r["peer"] == "fastrnn" and r["median_us"] is not None:
            fastrnn[(r["workload"], r["threads"])] = r["median_us"]
    threads = sorted(int(n) for n in limits["fma_gflops"])
    names = names or [n for n in WORKLOADS if n != "default"]
    lines = [
        "| workload | threads | FLOP time | W read time (level) | lower bound | fastrnn | fastrnn ÷ bound |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for name in names:
        for n in threads:
            b = lower_bound(WORKLOADS[name], limits, n)
            me = fastrnn.get((name, n))
            ratio = f"{me / b['bound_us']:.2f}" if me else "—"
            lines.append(
                f"| `{name}` | {n} | {format_time(b['flop_us'])} | {format_time(b['read_us'])} ({b['level']}) | "
                f"{format_time(b['bound_us'])} | {format_time(me)} | {ratio} |"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--remeasure", action="store_true", help="measure again and rewrite bench/limits.json"
    )
    p.add_argument(
        "--threads", nargs="+", type=int, default=[1, 2], help="thread counts (default: 1 2)"
    )
    args = p.parse_args(argv)

    def say(msg):
        print(msg, file=sys.stderr, flush=True)

    limits = load_or_measure(args.remeasure, args.threads, say)
    results = None
    if os.path.exists(RESULTS_JSON):
        with open(RESULTS_JSON) as f:
            results = json.load(f)["results"]
    print(format_limits(limits))
    print()
    print(format_bounds(limits, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
