"""Where the time of fastrnn's kernels goes on this machine (AVX-512 CPUs only).

    python bench/anatomy.py

Compiles anatomy.cc (next to this file) with the system g++ and the flags CMakeLists.txt
gives the AVX-512 kernels, runs it on one core and prints what each piece costs, taken away
one at a time: the projection GEMM, an LSTM step with and without its cell math and output
row, and batch 1 with the projection before the steps or inside them (see anatomy.cc).
Percentages are of one core's FMA peak from bench/limits.py (bench/limits.json, measured
if missing). Needs no torch; not part of the package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "anatomy.cc")
CSRC = os.path.join(os.path.dirname(HERE), "csrc")
FLAGS = ["-O3", "-fno-math-errno", "-std=c++17", "-mavx512f", "-mavx512bw", "-mavx512dq",
         "-mavx512vl", "-mavx2", "-mfma", "-mf16c"]


def measure() -> dict:
    """{name: (value, unit)} from one run of the probe."""
    gxx = shutil.which("g++") or shutil.which("c++")
    if gxx is None:
        raise RuntimeError("bench/anatomy.py needs a C++ compiler (g++)")
    with tempfile.TemporaryDirectory(prefix="fastrnn-anatomy-") as tmp:
        exe = os.path.join(tmp, "anatomy")
        subprocess.run([gxx, *FLAGS, "-I", CSRC, SOURCE, "-o", exe], check=True)
        out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
    result = {}
    for line in out.splitlines():
        name, value, unit = line.split()
        result[name] = (float(value), unit)
    return result


def render(r: dict, peak: float) -> str:
    lines = [f"FMA peak of this core: {peak:.1f} GFLOP/s", "",
             "| measurement | value | share of peak |", "|---|--:|--:|"]
    for name, (value, unit) in r.items():
        share = f"{value / peak:.1%}" if unit == "GFLOP/s" else ""
        lines.append(f"| `{name}` | {value:.4g} {unit} | {share} |")
    for tag in ("all", "half"):
        sep, ahead, proj = (r.get(f"b1_H256_{tag}_{k}", (None,))[0]
                            for k in ("separate", "ahead", "projection"))
        if sep and ahead and proj:
            lines.append("")
            lines.append(f"batch 1, {tag} panels: steps alone ≈ {sep - proj:.0f} us, projection "
                         f"{proj:.0f} us; computed inside the steps the pair takes {ahead:.0f} us "
                         f"({ahead / sep:.0%} of {sep:.0f}), against {max(sep - proj, proj):.0f} us "
                         f"if it overlapped perfectly")
    return "\n".join(lines)


def main() -> None:
    if not os.path.exists("/proc/cpuinfo") or "avx512f" not in open("/proc/cpuinfo").read():
        sys.exit("bench/anatomy.py: this CPU has no AVX-512")
    sys.path.insert(0, HERE)
    import limits

    peak = limits.load_or_measure()["fma_gflops"]["1"]
    print(render(measure(), peak))


if __name__ == "__main__":
    main()
