"""Where the time of fastrnn's kernels goes on this machine (AVX-512 or AVX2 kernels).

    python bench/anatomy.py               the ISA fastrnn runs here (AVX-512 or AVX2)
    python bench/anatomy.py --isa avx2    the AVX2 kernels (on an AVX-512 CPU too)
    python bench/anatomy.py --quick       a tenth of the repetitions (a smoke run)
    python bench/anatomy.py --isa avx2 --narrow
                                          the int8 figures with the avx2_w7 kernels (int7)

Compiles anatomy.cc (next to this file) with the system g++ and the flags CMakeLists.txt
gives that ISA's kernels, runs it on one core and prints what each piece costs, taken away
one at a time: the projection GEMM, an LSTM step with and without its cell math and output
row, batch 1 with the projection before the steps or inside them, and the int8 GEMM and
batch-1 int8 steps (see anatomy.cc).
Percentages are of one core's FMA peak for that ISA from bench/limits.py (bench/limits.json,
measured if missing). Needs the repository's csrc/ (the kernel headers) and g++; no torch;
not part of the package.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "anatomy.cc")
CSRC = os.path.join(os.path.dirname(HERE), "csrc")
COMMON = ["-O3", "-fno-math-errno", "-std=c++17"]
# CMakeLists.txt's flags for kernels-avx512.cc and kernels-avx2.cc.
FLAGS = {
    "avx512": ["-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx2", "-mfma", "-mf16c"],
    "avx2": ["-mavx2", "-mfma", "-mf16c"],
}


def measure(isa: str = "avx512", quick: bool = False, narrow: bool = False) -> dict:
    """{name: (value, unit)} from one run of the probe built for `isa`."""
    gxx = shutil.which("g++") or shutil.which("c++")
    if gxx is None:
        raise RuntimeError("bench/anatomy.py needs a C++ compiler (g++)")
    with tempfile.TemporaryDirectory(prefix="fastrnn-anatomy-") as tmp:
        exe = os.path.join(tmp, "anatomy")
        defines = ["-DFASTRNN_I8_NARROW"] if narrow else []
        subprocess.run(
            [gxx, *COMMON, *FLAGS[isa], *defines, "-I", CSRC, SOURCE, "-o", exe], check=True
        )
        args = [exe, "quick"] if quick else [exe]
        out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    result = {}
    for line in out.splitlines():
        name, value, unit = line.split()
        result[name] = (float(value), unit)
    return result


def render(r: dict, peak: float, isa: str = "avx512", note: str = "") -> str:
    lines = [
        f"{isa} kernels{note}; FMA peak of this core for {isa}: {peak:.1f} GFLOP/s",
        "",
        "| measurement | value | share of peak |",
        "|---|--:|--:|",
    ]
    for name, (value, unit) in r.items():
        share = f"{value / peak:.1%}" if unit == "GFLOP/s" else ""
        lines.append(f"| `{name}` | {value:.4g} {unit} | {share} |")
    for tag in ("all", "half"):
        sep, ahead, proj = (
            r.get(f"b1_H256_{tag}_{k}", (None,))[0] for k in ("separate", "ahead", "projection")
        )
        if sep and ahead and proj:
            lines.append("")
            lines.append(
                f"batch 1, {tag} panels: steps alone ≈ {sep - proj:.0f} us, projection "
                f"{proj:.0f} us; computed inside the steps the pair takes {ahead:.0f} us "
                f"({ahead / sep:.0%} of {sep:.0f}), against {max(sep - proj, proj):.0f} us "
                f"if it overlapped perfectly"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--isa", choices=list(FLAGS), help="default: the one fastrnn runs here")
    p.add_argument("--quick", action="store_true", help="a tenth of the repetitions")
    p.add_argument(
        "--narrow",
        action="store_true",
        help="AVX2 only: the int8 kernels of the avx2_w7 table (7-bit weights, int7)",
    )
    args = p.parse_args(argv)
    sys.path.insert(0, HERE)
    import limits

    available = limits.vector_isas()
    isa = args.isa or limits.runner.machine_info()["fastrnn"]["isa"]  # honours FASTRNN_ISA
    if args.isa is None and isa not in FLAGS:  # scalar: the widest kernels the CPU has
        isa = next((i for i in FLAGS if i in available), None)
    if isa not in available:
        print(f"bench/anatomy.py: this CPU has no {isa or 'AVX2 or AVX-512'}", file=sys.stderr)
        return 2
    if args.narrow and isa != "avx2":
        print("bench/anatomy.py: --narrow is for the AVX2 kernels (--isa avx2)", file=sys.stderr)
        return 2
    if not os.path.isdir(CSRC):
        print(f"bench/anatomy.py: needs the kernel headers in {CSRC}", file=sys.stderr)
        return 2
    try:
        lim = limits.load_or_measure(threads=[1], repeat=1 if args.quick else limits.REPEAT)
        r = measure(isa, args.quick, args.narrow)
    except (RuntimeError, subprocess.CalledProcessError) as e:
        print(f"bench/anatomy.py: {e}", file=sys.stderr)
        return 2
    note = " (int8 figures: the avx2_w7 kernels, 7-bit weights)" if args.narrow else ""
    print(render(r, limits.fma_peak(lim, 1, isa), isa, note))
    return 0


if __name__ == "__main__":
    sys.exit(main())
