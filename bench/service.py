"""The service benchmark: many Python threads stepping streams of one shared model at once.

A production service calls one model from several request threads: each thread here owns a
stream (its own state) of one shared 2-layer LSTM (I = H = 256, batch 1) and steps it as fast
as it can for a fixed time. Reported per number of concurrent callers (1, 2, 4, 8) and per
engine thread count (1 and 2): steps per second over all callers, and the p50 / p99 of one
step's latency as a caller sees it (queueing for the cores included). fastrnn runs beside
onnxruntime on the same weights (the step graph exported from torch, intra_op_num_threads =
the engine thread count, one session shared by every caller, as a service would), alternating
engine by engine within each row, and each row repeated; the medians are reported.

    python bench/service.py                      # the whole table (~1 min), markdown + json
    python bench/service.py --quick              # 1 and 2 callers, short runs (seconds)
    python bench/service.py --callers 1 2 4 8 16 --threads 2 --seconds 2 --repeats 5
    python bench/service.py --json out.json

Results of a full run are written to bench/results/<cpu>-service.md/.json (--no-save to skip).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time

import numpy as np
from workloads import Workload, runner

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOAD = Workload(
    "service_lstm_256", "LSTM", 1, 1, 256, 256, L=2, streaming=True, about="service steps"
)


def _fastrnn_session(case, threads: int):
    """A factory of per-caller step functions over one shared fastrnn model."""
    import fastrnn

    fastrnn.set_num_threads(threads)
    model = case.model

    def make_caller():
        stream = model.stream(batch=1)
        x = np.ascontiguousarray(case.x[0])  # (1, I)
        return lambda: stream.step(x)

    return make_caller


def _onnxruntime_session(case, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    sess = ort.InferenceSession(case.onnx_path(), so, providers=["CPUExecutionProvider"])
    x = np.ascontiguousarray(case.x[0:1])  # (1, 1, I): one step

    def make_caller():
        state = {
            "h0": np.zeros(WORKLOAD.state_shape(), np.float32),
            "c0": np.zeros(WORKLOAD.state_shape(), np.float32),
        }

        def step():
            _, state["h0"], state["c0"] = sess.run(None, {"x": x, **state})

        return step

    return make_caller


ENGINES = {"fastrnn": _fastrnn_session, "onnxruntime": _onnxruntime_session}


def run_callers(make_caller, callers: int, seconds: float) -> dict:
    """callers threads, each stepping its own caller for `seconds` after a common start.
    Returns steps/s over all callers and the step latency percentiles in microseconds."""
    steps = [make_caller() for _ in range(callers)]
    for s in steps:  # warm-up: first-call allocations, thread start-up
        for _ in range(20):
            s()
    lat = [[] for _ in range(callers)]
    start = threading.Barrier(callers + 1)
    stop = threading.Event()

    def worker(i):
        step, out, clock = steps[i], lat[i], time.perf_counter_ns
        start.wait()
        while not stop.is_set():
            t0 = clock()
            step()
            out.append(clock() - t0)

    ts = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(callers)]
    for t in ts:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    all_lat = np.concatenate([np.asarray(v, np.float64) for v in lat]) / 1e3
    return {
        "steps_per_s": all_lat.size / wall,
        "p50_us": float(np.percentile(all_lat, 50)),
        "p99_us": float(np.percentile(all_lat, 99)),
        "per_caller_steps": [len(v) for v in lat],
    }


def measure(engines, callers_list, threads_list, seconds, repeats, say=print) -> list:
    case = runner.Case(WORKLOAD, 0, tempfile.mkdtemp(prefix="fastrnn-service-"))
    rows = []
    for threads in threads_list:
        for callers in callers_list:
            runs = {e: [] for e in engines}
            for r in range(repeats):
                order = engines if r % 2 == 0 else engines[::-1]
                for e in order:
                    make = ENGINES[e](case, threads)
                    time.sleep(0.05)
                    runs[e].append(run_callers(make, callers, seconds))
            for e in engines:
                rs = runs[e]
                row = {
                    "engine": e,
                    "threads": threads,
                    "callers": callers,
                    "steps_per_s": statistics.median(x["steps_per_s"] for x in rs),
                    "p50_us": statistics.median(x["p50_us"] for x in rs),
                    "p99_us": statistics.median(x["p99_us"] for x in rs),
                    "repeats": len(rs),
                }
                rows.append(row)
                say(
                    f"threads {threads} callers {callers:2d} {e:12s} "
                    f"{row['steps_per_s']:9.0f} steps/s  p50 {row['p50_us']:8.1f} us  "
                    f"p99 {row['p99_us']:8.1f} us"
                )
    return rows


def format_markdown(rows, machine: dict) -> str:
    engines = list(dict.fromkeys(r["engine"] for r in rows))
    head = "| threads | callers | " + " | ".join(f"{e} steps/s | {e} p50 / p99" for e in engines)
    lines = [
        (
            f"Service benchmark on {machine.get('cpu', '?')} (isa {machine.get('isa', '?')}), "
            f"{WORKLOAD.L}-layer LSTM I = H = {WORKLOAD.H}, batch 1, one stream per caller."
        ),
        "",
        head + " | fastrnn ÷ onnxruntime (steps/s) |" if "onnxruntime" in engines else head + " |",
        "|" + "--:|" * (2 + 2 * len(engines) + ("onnxruntime" in engines)),
    ]
    keyed = {(r["threads"], r["callers"], r["engine"]): r for r in rows}
    for threads, callers in dict.fromkeys((r["threads"], r["callers"]) for r in rows):
        cells = [str(threads), str(callers)]
        for e in engines:
            r = keyed[(threads, callers, e)]
            cells += [
                f"{r['steps_per_s']:,.0f}",
                f"{r['p50_us']:.0f} µs / {r['p99_us']:.0f} µs",
            ]
        if "onnxruntime" in engines and "fastrnn" in engines:
            ratio = (
                keyed[(threads, callers, "fastrnn")]["steps_per_s"]
                / keyed[(threads, callers, "onnxruntime")]["steps_per_s"]
            )
            cells.append(f"**{ratio:.2f}×**")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--callers", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--seconds", type=float, default=1.0, help="per run (default 1)")
    p.add_argument("--repeats", type=int, default=3, help="alternating runs per row (median)")
    p.add_argument("--engines", nargs="+", default=list(ENGINES), choices=list(ENGINES))
    p.add_argument("--quick", action="store_true", help="1 and 2 callers, 0.2 s, 1 repeat")
    p.add_argument("--json", help="also write the rows to this file")
    p.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    args = p.parse_args(argv)
    if args.quick:
        args.callers, args.seconds, args.repeats = [1, 2], 0.2, 1
    engines = [e for e in args.engines if e == "fastrnn" or runner.skip_reason(e) is None]
    for e in args.engines:
        if e not in engines:
            print(f"skipping {e}: {runner.skip_reason(e)}", file=sys.stderr)
    if "onnxruntime" in engines and runner.skip_reason("torch") is not None:
        engines.remove("onnxruntime")
    rows = measure(engines, args.callers, args.threads, args.seconds, args.repeats)
    info = runner.machine_info()
    import fastrnn

    machine = {"cpu": info.get("cpu"), "isa": fastrnn.cpu_info()["isa"], **info}
    md = format_markdown(rows, machine)
    print(md)
    doc = json.dumps({"machine": machine, "rows": rows}, indent=1, default=str)
    if args.json:
        with open(args.json, "w") as f:
            f.write(doc)
    if not args.quick and not args.no_save:
        slug = info.get("slug") or "cpu"
        os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
        base = os.path.join(HERE, "results", f"{slug}-{machine['isa']}-service")
        with open(base + ".md", "w") as f:
            f.write(md)
        with open(base + ".json", "w") as f:
            f.write(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
