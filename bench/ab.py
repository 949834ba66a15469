"""Before and after: two fastrnn builds, or two settings of one, timed in alternating fresh
processes, with a verdict that a noisy machine seldom fakes.

    python bench/ab.py --b build/dev/_core.cpython-311-x86_64-linux-gnu.so
                                    the installed (or in-place) fastrnn against the same
                                    Python code with that compiled core
    python bench/ab.py --a /tmp/base --b /tmp/new --workload stream_lstm_256 lat_lstm_256 \\
        --dtype int8 --threads 1 2 --rounds 8
                                    two package roots (each holds a fastrnn/ package)
    python bench/ab.py --env-b FASTRNN_ISA=avx2
                                    one build, two settings (any environment variable)
    python bench/ab.py --quick      one small workload, 1 thread, 2 rounds, seconds

A contender (--a, --b) is a directory that holds a `fastrnn` package (a sys.path entry), the
`fastrnn` package directory itself, or a compiled `_core<suffix>` for this interpreter, which
is put into a temporary copy of the fastrnn package the other scripts here would import
(bench/workloads.py: the checkout's when built in place, else the installed one); left out,
that package itself. Each child process checks that it imported the contender's fastrnn.

Rounds alternate the order (A then B, then B then A) so that a machine that drifts slower or
faster over the run weighs on both alike. In each process every (workload, threads) pair is
warmed up, then timed for --seconds; its median call is the process's figure (streaming
workloads: one loop of T one-step calls, as bench/precision.py times them). Per pair, the
table gives each side's median over the rounds, B/A as the median of the rounds' own ratios,
the rounds in which B was faster, and a two-sided sign test over the rounds: "B faster" or
"B slower" only when p < 0.05 (so 6 rounds out of 6 at least; fewer rounds can only say
"level"), else "level". The sign test assumes nothing about the noise but that a round's two
processes see the same machine, which alternating them gives.

Prints the CPU, each contender (path, environment, the ISA it ran) and the table; --json
writes every process's figures too. Decide a speed change from this, not from one run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from importlib.machinery import EXTENSION_SUFFIXES

DTYPES = ("float32", "bf16", "int8", "int7")

# The child: imports fastrnn from the contender's path, times each (workload, threads) pair and
# prints one JSON object. Its figures are seconds per call.
CHILD = r"""
import json, sys, time
spec = json.loads(sys.argv[1])
if spec["path"]:
    sys.path.insert(0, spec["path"])
import numpy as np
import fastrnn
from fastrnn._bench.peers import _fastrnn_module
from fastrnn._bench.workloads import WORKLOADS

def timed(call, seconds):
    t_end = time.perf_counter() + min(0.2, seconds / 4)
    call(); call()
    while time.perf_counter() < t_end:
        call()
    times = []
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end or len(times) < 3:
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2], len(times)

out = {"file": fastrnn.__file__, "isa": fastrnn.cpu_info()["isa"], "results": []}
for name in spec["workloads"]:
    w = WORKLOADS[name]
    for threads in spec["threads"]:
        fastrnn.set_num_threads(threads)
        model = _fastrnn_module(w, seed=0)
        if spec["dtype"] != "float32":
            model = fastrnn.quantize(model, spec["dtype"])
        x = np.random.default_rng(0).standard_normal(w.x_shape()).astype(np.float32)
        if w.streaming:
            stream = model.stream(batch=w.B)
            steps = [np.ascontiguousarray(x[t]) for t in range(w.T)]

            def call(step=stream.step, steps=steps):
                for x_t in steps:
                    step(x_t)
        else:
            def call(model=model, x=x):
                model(x)
        median, calls = timed(call, spec["seconds"])
        out["results"].append(
            {"workload": name, "threads": threads, "median_s": median, "calls": calls}
        )
print(json.dumps(out))
"""


def sign_test(less: int, more: int) -> float:
    """Two-sided sign test: the probability, with no difference, of a split of less + more
    rounds at least as uneven as this one (ties left out before)."""
    n = less + more
    if n == 0:
        return 1.0
    k = min(less, more)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def summarize(a: list, b: list, alpha: float = 0.05) -> dict:
    """One (workload, threads) pair: a and b are the rounds' figures, paired by round."""
    if len(a) != len(b) or not a:
        raise ValueError(
            f"summarize: a and b must pair one figure per round, got {len(a)} and {len(b)}"
        )
    ratios = [y / x for x, y in zip(a, b)]
    faster = sum(r < 1 for r in ratios)
    slower = sum(r > 1 for r in ratios)
    p = sign_test(faster, slower)
    ratio = statistics.median(ratios)
    verdict = "level"
    if p < alpha:
        verdict = "B faster" if ratio < 1 else "B slower"
    return {
        "a_median_s": statistics.median(a),
        "b_median_s": statistics.median(b),
        "ratio": ratio,
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "b_faster_rounds": faster,
        "rounds": len(ratios),
        "p": p,
        "verdict": verdict,
    }


def parse_env(items: list, what: str) -> dict:
    env = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"{what} must be KEY=VALUE, got {item!r}")
        env[key] = value
    return env


def picked_package() -> str:
    """The fastrnn package directory the other bench scripts import (bench/workloads.py)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import workloads  # noqa: F401  (makes the source-tree-or-installed choice)

    import fastrnn

    return os.path.dirname(os.path.abspath(fastrnn.__file__))


def contender_path(spec: str | None, workdir: str, tag: str) -> tuple:
    """(sys.path entry, the package directory its fastrnn must come from, what it is) for
    --a / --b."""
    if spec is None:
        package = picked_package()
        return os.path.dirname(package), package, package
    spec = os.path.abspath(spec)
    if os.path.isdir(os.path.join(spec, "fastrnn")):
        return spec, os.path.join(spec, "fastrnn"), os.path.join(spec, "fastrnn")
    if os.path.isdir(spec) and os.path.isfile(os.path.join(spec, "__init__.py")):
        if os.path.basename(spec) != "fastrnn":
            raise SystemExit(f"--{tag}: {spec} is a package, but not one named fastrnn")
        return os.path.dirname(spec), spec, spec
    if os.path.isfile(spec):
        suffix = next((s for s in EXTENSION_SUFFIXES if spec.endswith(s)), None)
        if suffix is None or not os.path.basename(spec).startswith("_core"):
            raise SystemExit(
                f"--{tag}: a compiled core must be named _core<suffix> with a suffix this "
                f"Python imports ({', '.join(EXTENSION_SUFFIXES)}), got {os.path.basename(spec)}"
            )
        root = os.path.join(workdir, tag)
        package = os.path.join(root, "fastrnn")
        base = picked_package()
        shutil.copytree(
            base,
            package,
            ignore=shutil.ignore_patterns("_core.*.so", "_core.*.pyd", "_core.so", "__pycache__"),
        )
        shutil.copy2(spec, os.path.join(package, "_core" + suffix))
        return root, package, f"{spec} in a copy of {base}"
    raise SystemExit(
        f"--{tag}: expected a directory holding a fastrnn package, the package itself or a "
        f"compiled _core file, got {spec} (not found)"
    )


def run_child(path: str, package: str, env_extra: dict, job: dict, timeout: float) -> dict:
    """Runs one timing process of one contender; returns its JSON."""
    env = dict(os.environ)
    env.update(env_extra)
    spec = dict(job, path=path)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(spec)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise SystemExit(
            f"a timing process failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
        )
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    got = os.path.dirname(os.path.realpath(out["file"]))
    if got != os.path.realpath(package):
        raise SystemExit(f"a timing process imported fastrnn from {got}, not from {package}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--a", help="the base: package root, fastrnn package, or a compiled _core")
    ap.add_argument("--b", help="the change: package root, fastrnn package, or a compiled _core")
    ap.add_argument("--env-a", action="append", metavar="KEY=VALUE", help="for A's processes")
    ap.add_argument("--env-b", action="append", metavar="KEY=VALUE", help="for B's processes")
    ap.add_argument("--workload", nargs="+", default=["stream_lstm_256"])
    ap.add_argument("--dtype", choices=DTYPES, default="float32")
    ap.add_argument("--threads", nargs="+", type=int, default=[1])
    ap.add_argument("--rounds", type=int, default=6, help="A and B processes each (default 6)")
    ap.add_argument("--seconds", type=float, default=2.0, help="timed per pair and process")
    ap.add_argument("--json", help="write the figures of every process here")
    ap.add_argument("--quick", action="store_true", help="small_lstm_64, 1 thread, 2 rounds")
    args = ap.parse_args(argv)
    if args.quick:
        args.workload, args.threads, args.rounds, args.seconds = ["small_lstm_64"], [1], 2, 0.3
    if args.rounds < 1:
        raise SystemExit(f"--rounds must be at least 1, got {args.rounds}")
    if args.seconds <= 0:
        raise SystemExit(f"--seconds must be positive, got {args.seconds}")
    if any(t < 1 for t in args.threads):
        raise SystemExit(f"--threads must be at least 1 each, got {args.threads}")
    env = {"a": parse_env(args.env_a, "--env-a"), "b": parse_env(args.env_b, "--env-b")}

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from workloads import WORKLOADS, format_time

    unknown = [w for w in args.workload if w not in WORKLOADS]
    if unknown:
        raise SystemExit(f"--workload: unknown {unknown}; known: {', '.join(WORKLOADS)}")
    from fastrnn._bench.machine import machine_info

    machine = machine_info()
    job = {
        "workloads": args.workload,
        "threads": args.threads,
        "dtype": args.dtype,
        "seconds": args.seconds,
    }
    pairs = len(args.workload) * len(args.threads)
    timeout = 120 + pairs * (args.seconds + 30) * 2
    figures = {"a": [], "b": [], "isa": {}}
    with tempfile.TemporaryDirectory(prefix="fastrnn-ab-") as workdir:
        where = {tag: contender_path(getattr(args, tag), workdir, tag) for tag in ("a", "b")}
        for r in range(args.rounds):
            for tag in ("a", "b") if r % 2 == 0 else ("b", "a"):
                out = run_child(*where[tag][:2], env[tag], job, timeout)
                figures[tag].append(out["results"])
                figures["isa"][tag] = out["isa"]
                print(f"round {r + 1}/{args.rounds} {tag.upper()} done", file=sys.stderr)
        described = {tag: where[tag][2] for tag in ("a", "b")}

    rows = []
    for i, (name, threads) in enumerate((w, t) for w in args.workload for t in args.threads):
        a = [run[i]["median_s"] for run in figures["a"]]
        b = [run[i]["median_s"] for run in figures["b"]]
        rows.append(dict(summarize(a, b), workload=name, threads=threads, a=a, b=b))

    print(f"CPU: {machine['cpu']}; {machine['logical_cpus']} logical CPUs")
    for tag in ("a", "b"):
        extra = " ".join(f"{k}={v}" for k, v in env[tag].items()) or "(environment as is)"
        print(f"{tag.upper()}: {described[tag]} {extra}; ISA {figures['isa'][tag]}")
    print(
        f"dtype {args.dtype}; {args.rounds} rounds of A and B processes, alternating; "
        f"{args.seconds:g} s timed per pair and process\n"
    )
    print(
        "| workload | threads | A | B | B/A (rounds' median) | B/A range | B faster | sign test p | verdict |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|---|")
    for row in rows:
        print(
            f"| `{row['workload']}` | {row['threads']} | {format_time(row['a_median_s'] * 1e6)} | "
            f"{format_time(row['b_median_s'] * 1e6)} | {row['ratio']:.3f} | "
            f"{row['ratio_min']:.3f}–{row['ratio_max']:.3f} | "
            f"{row['b_faster_rounds']} of {row['rounds']} | {row['p']:.3g} | {row['verdict']} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "machine": machine,
                    "job": job,
                    "contenders": described,
                    "env": env,
                    "isa": figures["isa"],
                    "rows": rows,
                },
                f,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
