"""This machine's limits, and each workload's lower bound on it.

    python bench/limits.py               measure (or reuse bench/limits.json) and print the
                                         bound of every workload for the ISA fastrnn uses,
                                         and fastrnn's distance to it when this CPU's results
                                         file (bench/results/<cpu>-<isa>.json) exists
    python bench/limits.py --isa avx2    the bounds of fastrnn's AVX2 path (AVX2 FMA peak)
    python bench/limits.py --remeasure   measure again and rewrite bench/limits.json
    python bench/limits.py --quick       1 thread, one run per figure (a few seconds; rough)

The measurement: limits_probe.cc (next to this file), compiled at run time with the system
g++ into a temporary directory, runs at 1 and 2 threads
- the peak fp32 FMA rate of each vector ISA the CPU has: independent chains of FMAs on zmm
  registers (AVX-512) and on ymm registers (AVX2 + FMA), kept apart because a CPU's AVX2 peak
  is not always half its AVX-512 one (Zen 4 runs a zmm FMA as two ymm halves);
- the read bandwidth of L1, L2, L3 and DRAM: each thread sums its own buffer, sized to sit in
  that level (half of L1d, half of L2, a share of L3 at least twice L2, four times L3 — at
  most a quarter of the free memory), with the widest vectors the CPU has.
Each figure is the best of several runs (noise only ever makes a run slower), counting only
runs during which other processes left the cores alone.

bench/limits.json: {"caches", "fma_gflops": {threads: the widest ISA's peak}, "fma_isa": that
ISA, "fma_gflops_by_isa": {isa: {threads: peak}}, "read_gbps": {level: {threads: GB/s}},
"noisy", "repeat", "cpu"} (keys of thread counts are strings).

The lower bound of a workload at n threads, for the ISA fastrnn runs:

    bound = max(FLOPs / peak(isa, n),  T · Σ|W_hh| / bandwidth(n, level))

FLOPs count the matrix products (see fastrnn._bench). Σ|W_hh| is the fp32 size of every W_hh
of the stack (all layers and directions): each time step must read all of it. `level` is the
smallest cache whose capacity holds Σ|W_hh| (L1 and L2 count n cores' worth, L3 is shared);
else DRAM. Streaming workloads call one step at a time, so the input projection cannot be
batched over time either: their bytes per step and working set are Σ(|W_ih| + |W_hh|).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PROBE_SOURCE = os.path.join(HERE, "limits_probe.cc")
LIMITS_JSON = os.path.join(HERE, "limits.json")
RESULTS_DIR = os.path.join(HERE, "results")  # compare.py's output: one file per CPU and ISA
LEVELS = ("L1", "L2", "L3", "DRAM")
VECTOR_ISAS = ("avx512", "avx2")  # the FMA peaks measured, those the CPU has (fastrnn's names)
REPEAT = 3  # quiet runs per figure, the best kept

from workloads import WORKLOADS, format_time, runner  # noqa: E402  (after the constants above)


class NoCompiler(RuntimeError):
    """The probe cannot be built: no g++ on this machine."""


def results_stem(machine: dict) -> str:
    """The name of a results file without extension: "<cpu slug>-<fastrnn's ISA>"."""
    return f"{machine['slug']}-{machine['fastrnn']['isa']}"


def cache_sizes() -> dict:
    """{"L1": bytes per core, "L2": bytes per core, "L3": bytes shared} from sysfs (Linux);
    common sizes (48 KiB, 1 MiB, 32 MiB) where it is missing."""
    found = runner.cpu_caches()
    return {
        "L1": found.get("L1d", 48 << 10),
        "L2": found.get("L2", 1 << 20),
        "L3": found.get("L3", 32 << 20),
    }


def _free_memory() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) << 10
    except (OSError, ValueError, IndexError):
        pass
    return None


def _read_sizes(caches: dict, threads: int) -> dict:
    """Bytes per thread for the read test of each level."""
    dram = 4 * caches["L3"]
    free = _free_memory()
    if free:  # a VM may report a host's L3 of hundreds of MiB
        dram = min(dram, free // (4 * threads))
    return {
        "L1": caches["L1"] // 2,
        "L2": caches["L2"] // 2,
        "L3": max(2 * caches["L2"], caches["L3"] // (2 * threads)),
        "DRAM": dram,
    }


def vector_isas() -> list:
    """The ISAs of VECTOR_ISAS this CPU runs (fastrnn's detection), widest first."""
    available = runner.machine_info()["fastrnn"]["available"]
    return [isa for isa in VECTOR_ISAS if isa in available]


def measure(threads=(1, 2), repeat: int = REPEAT, say=print) -> dict:
    """Compiles and runs the probe; returns the content of limits.json (see the module
    docstring) but "cpu". Raises NoCompiler without g++."""
    gxx = shutil.which("g++") or shutil.which("c++")
    if gxx is None:
        raise NoCompiler("bench/limits.py needs a C++ compiler (g++) to build limits_probe.cc")
    caches = cache_sizes()
    isas = vector_isas()
    out = {
        "caches": caches,
        "fma_gflops": {},
        "fma_isa": isas[0] if isas else "scalar",
        "fma_gflops_by_isa": {isa: {} for isa in isas},
        "read_gbps": {level: {} for level in LEVELS},
        "noisy": [],
        "repeat": repeat,
    }
    with tempfile.TemporaryDirectory(prefix="fastrnn-limits-") as tmp:
        exe = os.path.join(tmp, "limits_probe")
        subprocess.run([gxx, "-O2", "-std=c++17", "-pthread", PROBE_SOURCE, "-o", exe], check=True)

        def probe(*args) -> float:
            """Best of `repeat` runs taken while other processes left the cores alone (at most
            4·repeat tries, one when repeat is 1; if none was quiet, the best of all, and the
            figure is noted)."""
            quiet, noisy = [], []
            for _ in range(4 * repeat if repeat > 1 else 1):
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
            for isa in isas:
                say(f"limits: {isa} FMA peak at {n} thread(s)")
                out["fma_gflops_by_isa"][isa][str(n)] = probe("fma", n, isa)
            out["fma_gflops"][str(n)] = (
                out["fma_gflops_by_isa"][isas[0]][str(n)] if isas else probe("fma", n, "scalar")
            )
            for level, size in _read_sizes(caches, n).items():
                say(f"limits: {level} read bandwidth at {n} thread(s), {size >> 10} KiB per thread")
                out["read_gbps"][level][str(n)] = probe("read", n, size)
    return out


def load_or_measure(
    remeasure: bool = False, threads=(1, 2), say=print, repeat: int = REPEAT
) -> dict:
    """bench/limits.json when it exists, was measured on this CPU, covers `threads` and every
    vector ISA's peak, with at least `repeat` runs per figure; else a fresh measurement
    (written there, with the CPU's name). Raises NoCompiler without g++."""
    cpu = runner.machine_info()["cpu"]
    if not remeasure and os.path.exists(LIMITS_JSON):
        with open(LIMITS_JSON) as f:
            limits = json.load(f)
        by_isa = limits.get("fma_gflops_by_isa", {})
        if limits.get("cpu") != cpu:
            say(
                f"limits: {LIMITS_JSON} was measured on {limits.get('cpu', 'an unknown CPU')}, "
                f"this is {cpu}: measuring again"
            )
        elif (
            all(str(n) in by_isa.get(isa, {}) for n in threads for isa in vector_isas())
            and all(str(n) in limits["fma_gflops"] for n in threads)
            and limits.get("repeat", REPEAT) >= repeat
        ):
            return limits
    limits = measure(threads, repeat=repeat, say=say)
    limits["cpu"] = cpu
    with open(LIMITS_JSON, "w") as f:
        json.dump(limits, f, indent=2)
    return limits


def fma_peak(limits: dict, threads: int, isa: str | None = None) -> float:
    """GFLOP/s: the FMA peak of `isa` at `threads` (the widest ISA's without `isa`, or when
    limits has no figure for it: a file from before the peaks per ISA, or a scalar run)."""
    n = str(threads)
    by_isa = limits.get("fma_gflops_by_isa", {})
    if isa in by_isa and n in by_isa[isa]:
        return by_isa[isa][n]
    return limits["fma_gflops"][n]


def lower_bound(w, limits: dict, threads: int, isa: str | None = None) -> dict:
    """{"bound_us", "flop_us", "read_us", "level"}: workload w's lower bound at `threads` for
    fastrnn's `isa` (its FMA peak; default: the widest ISA's)."""
    n = str(threads)
    flop_us = w.flops() / (fma_peak(limits, threads, isa) * 1e3)
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


def bounds_for(names, thread_counts, limits: dict, isa: str | None = None) -> dict:
    """{(workload, threads): bound in µs}, the shape fastrnn._bench.format_markdown takes."""
    return {
        (name, n): lower_bound(WORKLOADS[name], limits, n, isa)["bound_us"]
        for name in names
        for n in thread_counts
    }


def format_limits(limits: dict) -> str:
    threads = sorted(limits["fma_gflops"], key=int)
    caches = limits["caches"]
    head = "| | " + " | ".join(f"{n} thread{'s' if int(n) > 1 else ''}" for n in threads) + " |"
    lines = [head, "|---|" + "--:|" * len(threads)]
    peaks = limits.get("fma_gflops_by_isa") or {"": limits["fma_gflops"]}
    for isa, by_threads in peaks.items():
        what = {"avx512": "AVX-512 (zmm)", "avx2": "AVX2 (ymm)"}.get(isa, isa)
        lines.append(
            f"| peak fp32 FMA{', ' + what if what else ''}, GFLOP/s | "
            + " | ".join(f"{by_threads[n]:.0f}" if n in by_threads else "—" for n in threads)
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


def format_bounds(limits: dict, results: list | None = None, names=None, isa=None) -> str:
    """A markdown table: each workload's bound at each thread count for fastrnn's `isa`, what
    sets it, and (given results records as dicts) fastrnn's median and its ratio to the
    bound."""
    fastrnn = {}
    for r in results or []:
        if r["peer"] == "fastrnn" and r["median_us"] is not None:
            fastrnn[(r["workload"], r["threads"])] = r["median_us"]
    threads = sorted(int(n) for n in limits["fma_gflops"])
    names = names or [n for n in WORKLOADS if n != "default"]
    flop = f"FLOP time ({isa} peak)" if isa in limits.get("fma_gflops_by_isa", {}) else "FLOP time"
    lines = [
        f"| workload | threads | {flop} | W read time (level) | lower bound | fastrnn | fastrnn ÷ bound |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for name in names:
        for n in threads:
            b = lower_bound(WORKLOADS[name], limits, n, isa)
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
    p.add_argument(
        "--isa",
        choices=VECTOR_ISAS + ("scalar",),
        help="the fastrnn ISA whose FMA peak bounds the workloads (default: the one fastrnn uses)",
    )
    p.add_argument(
        "--quick", action="store_true", help="1 thread, one run per figure: a few seconds, rough"
    )
    args = p.parse_args(argv)
    if args.quick:
        args.threads = [1]

    def say(msg):
        print(msg, file=sys.stderr, flush=True)

    try:
        limits = load_or_measure(args.remeasure, args.threads, say, 1 if args.quick else REPEAT)
    except NoCompiler as e:
        print(f"bench/limits.py: {e}", file=sys.stderr)
        return 2
    machine = runner.machine_info()
    isa = args.isa or machine["fastrnn"]["isa"]
    machine["fastrnn"]["isa"] = isa
    path = os.path.join(RESULTS_DIR, results_stem(machine) + ".json")
    results = None
    if os.path.exists(path):
        with open(path) as f:
            results = json.load(f)["results"]
    print(format_limits(limits))
    print()
    print(format_bounds(limits, results, isa=isa))
    if results:
        print(f"\nfastrnn's times: {os.path.relpath(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
