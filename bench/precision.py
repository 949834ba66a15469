"""Reduced precision side by side: fastrnn float32, bf16, int8 and int7 against the reduced
modes of its peers, each with its error against torch float32, at 1 and 2 threads.

Workloads (fastrnn._bench, the one definition): lat_lstm_256, lat_gru_256, lat_lstm_1024,
stream_lstm_256, tput_lstm_512; one seeded torch module (default init) and one N(0, 1) input
each, shared by every contender.

Contenders: fastrnn float32, bf16, int8 and int7 (int8 with 7-bit weights; `fastrnn.quantize`
of the model `from_torch` gives); torch float32; torch `quantize_dynamic` to qint8 and to
float16 (weights reduced, activations float32); onnxruntime float32, and int8 (`quantize_dynamic` with per-channel
QInt8 weights on the exported graph: its LSTM becomes DynamicQuantizeLSTM; onnxruntime has no
int8 GRU, so that row is n/a); openvino with INFERENCE_PRECISION_HINT=bf16, only on a CPU
with avx512_bf16. A peer that is not installed is left out with a note.

Error: max and mean |Δ| over the output (every step, every batch row) against torch float32
on the same input, measured at each thread count. Timing: the project's runner
(fastrnn._bench): bursts of calls in rotating rounds, each call timed alone, medians; the
share of the cores other processes used is noted when above 10%. Streaming is 100 one-step
calls carrying the state (fastrnn: `model.stream(batch=1).step(x_t)`).

    python bench/precision.py                     # the tables, 1 and 2 threads (~5 min)
    python bench/precision.py --out bench/results # → bench/results/<cpu>-precision.md
    python bench/precision.py --quick             # T = 4, 1 thread, a few calls (seconds)
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings

import numpy as np
from compare import cpu_title, machine_header
from workloads import WORKLOADS, format_time, runner

import fastrnn

NAMES = ("lat_lstm_256", "lat_gru_256", "lat_lstm_1024", "stream_lstm_256", "tput_lstm_512")
BASELINE = "fastrnn float32"
SEED = 0
QUICK_T = 4  # --quick: a few steps, enough for each step's rounding to reach the next


class NotAvailable(Exception):
    """A contender that cannot run this workload here; the message says why."""


def variant(case, **parts):
    """A shallow copy of `case` with some of its parts replaced (model, torch_module,
    _onnx_path): the runner's _prepare_<peer> functions then build from the reduced model or
    graph, on the same input."""
    out = copy.copy(case)
    out.__dict__.update(parts)
    return out


def fastrnn_reduced(case, dtype: str):
    return runner._prepare_fastrnn, variant(case, model=fastrnn.quantize(case.model, dtype))


def torch_dynamic(case, dtype: str):
    """torch.ao.quantization.quantize_dynamic: it swaps a module's children only, so the RNN
    goes in inside a Sequential."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
        reduced = torch.ao.quantization.quantize_dynamic(
            torch.nn.Sequential(case.torch_module),
            {torch.nn.LSTM, torch.nn.GRU},
            dtype=getattr(torch, dtype),
        )[0]
    return runner._prepare_torch, variant(case, torch_module=reduced)


def onnxruntime_int8(case):
    if case.w.cell != "LSTM":
        raise NotAvailable(
            f"onnxruntime has no int8 {case.w.cell} (quantize_dynamic turns only LSTM "
            "into DynamicQuantizeLSTM)"
        )
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = os.path.join(case.workdir, f"{case.w.name}-int8.onnx")
    logging.disable(logging.WARNING)  # its advice to run a pre-processing pass first
    try:
        quantize_dynamic(case.onnx_path(), path, per_channel=True, weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)
    ops = {node.op_type for node in onnx.load(path).graph.node}
    if "DynamicQuantizeLSTM" not in ops:
        raise NotAvailable("quantize_dynamic left the LSTM in float32")
    return runner._prepare_onnxruntime, variant(case, _onnx_path=path)


_ov_core = None


def prepare_openvino_bf16(case, threads: int):
    """The runner's openvino peer with bf16 in place of its f32 precision hint."""
    global _ov_core
    import openvino as ov

    if _ov_core is None:
        _ov_core = ov.Core()
    config = {
        "INFERENCE_NUM_THREADS": threads,
        "INFERENCE_PRECISION_HINT": "bf16",
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
    }
    compiled = _ov_core.compile_model(case.onnx_path(), "CPU", config)
    chosen = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
    if "bf16" not in chosen and "bfloat16" not in chosen:
        raise RuntimeError(f"openvino chose {chosen}, not bf16")
    req = compiled.create_infer_request()
    return runner._onnx_graph_call(case, lambda feed: req.infer(feed, share_inputs=True).to_tuple())


def openvino_bf16(case):
    if not fastrnn.cpu_info()["features"].get("avx512_bf16"):
        raise NotAvailable("this CPU has no avx512_bf16")
    return prepare_openvino_bf16, case


# Each contender: case → (prepare(case, threads) → (call, to_triple), the case it runs).
CONTENDERS = {
    "fastrnn float32": lambda case: (runner._prepare_fastrnn, case),
    "fastrnn bf16": lambda case: fastrnn_reduced(case, "bf16"),
    "fastrnn int8": lambda case: fastrnn_reduced(case, "int8"),
    "fastrnn int7": lambda case: fastrnn_reduced(case, "int7"),
    "torch float32": lambda case: (runner._prepare_torch, case),
    "torch qint8": lambda case: torch_dynamic(case, "qint8"),
    "torch float16": lambda case: torch_dynamic(case, "float16"),
    "onnxruntime float32": lambda case: (runner._prepare_onnxruntime, case),
    "onnxruntime int8": onnxruntime_int8,
    "openvino bf16": openvino_bf16,
}


def failure(e: Exception) -> str:
    first = (str(e).splitlines() or [""])[0][:200]
    return f"failed: {type(e).__name__}: {first}"


def build(case) -> dict:
    """{contender: (prepare, case) or NotAvailable}: every reduced model or graph is made once
    per workload, for all thread counts."""
    built = {}
    for name, make in CONTENDERS.items():
        reason = runner.skip_reason(name.split()[0])
        try:
            if reason:
                raise NotAvailable(reason)
            built[name] = make(case)
        except NotAvailable as e:
            built[name] = e
        except Exception as e:  # noqa: BLE001  a contender that cannot be built is reported, not fatal
            built[name] = NotAvailable(failure(e))
    return built


def run_one(case, built: dict, threads: int, min_time: float) -> list:
    """One workload at one thread count: each contender's error against torch float32, then
    all of them timed side by side. One row (a dict) per contender."""
    ref = case.reference()
    rows, calls = {}, {}
    for name, made in built.items():
        row = rows[name] = {
            "workload": case.w.name,
            "threads": threads,
            "contender": name,
            "median_us": None,
            "max_err": None,
            "mean_err": None,
            "others_load": None,
            "note": "",
        }
        if isinstance(made, NotAvailable):
            row["note"] = str(made)
            continue
        prepare, runs = made
        try:
            call, to_triple = prepare(runs, threads)
            if ref is not None:
                y = np.asarray(to_triple(call())[0], np.float64)
                if y.shape != ref[0].shape:
                    raise ValueError(f"output of shape {y.shape}, torch's {ref[0].shape}")
                delta = np.abs(y - ref[0])
                row["max_err"], row["mean_err"] = float(delta.max()), float(delta.mean())
        except Exception as e:  # noqa: BLE001  reported in the table, not fatal
            row["note"] = failure(e)
            continue
        calls[name] = call
    fastrnn.set_num_threads(threads)  # again: the last prepare may have been another peer's
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    meter = runner.LoadMeter().start()
    samples = runner._time_side_by_side(calls, min_time) if calls else {}
    load = meter.stop()
    for name, seconds in samples.items():
        rows[name].update(median_us=1e6 * statistics.median(seconds), others_load=load)
    return list(rows.values())


def run(names, threads, min_time: float, T: int | None, say) -> list:
    rows = []
    with tempfile.TemporaryDirectory(prefix="fastrnn-precision-") as workdir:
        for i, name in enumerate(names, 1):
            w = WORKLOADS[name]
            if T is not None:
                w = dataclasses.replace(w, T=min(T, w.T))
            say(f"[{i}/{len(names)}] {name}: {w.describe()}: building the models")
            case = runner.Case(w, SEED, workdir)
            built = build(case)
            for n in threads:
                say(f"[{i}/{len(names)}] {name} threads={n}: checking and timing")
                rows += run_one(case, built, n, min_time)
    return rows


def _err(v) -> str:
    return "—" if v is None else f"{v:.1e}"


def format_table(rows: list) -> str:
    """One markdown table (one thread count), then its notes: contenders not run and noisy
    workloads."""
    lines = [
        f"| workload | contender | median | speed-up vs {BASELINE} | max err | mean err |",
        "|---|---|--:|--:|--:|--:|",
    ]
    base = {r["workload"]: r["median_us"] for r in rows if r["contender"] == BASELINE}
    notes, noisy = {}, {}
    for r in rows:
        us, b = r["median_us"], base.get(r["workload"])
        if us is None:
            time_text = "failed" if r["note"].startswith("failed") else "n/a"
            notes.setdefault((r["contender"], r["note"]), []).append(r["workload"])
        else:
            time_text = format_time(us)
        speedup = f"{b / us:.2f}×" if us and b else "—"
        lines.append(
            f"| `{r['workload']}` | {r['contender']} | {time_text} | {speedup} "
            f"| {_err(r['max_err'])} | {_err(r['mean_err'])} |"
        )
        if r["others_load"] is not None and r["others_load"] > runner.BUSY:
            noisy[r["workload"]] = r["others_load"]
    every = {r["workload"] for r in rows}
    below = []
    for (contender, note), where in notes.items():
        scope = "" if set(where) == every else f" on {', '.join(f'`{w}`' for w in where)}"
        below.append(f"- {contender}{scope}: {note}.")
    for workload, load in noisy.items():
        below.append(f"- `{workload}`: noisy, other processes used {100 * load:.0f}% of the cores.")
    return "\n".join(lines) + ("\n\n" + "\n".join(below) if below else "")


def format_markdown(rows: list, doc: dict) -> str:
    machine = doc["machine"]
    quick = f" (--quick: T = {QUICK_T})" if doc.get("quick") else ""
    described = [
        f"`{name}` ({dataclasses.replace(WORKLOADS[name], T=doc['T'][name]).describe()})"
        for name in doc["names"]
    ]
    parts = [
        f"# Reduced precision against the peers: {cpu_title(machine)}",
        machine_header(doc),
        f"Workloads{quick}: " + ", ".join(described) + ".",
        (
            "Contenders: fastrnn's float32, bf16, int8 and int7 (7-bit) weights; torch float32 and its "
            "`quantize_dynamic` to qint8 and to float16; onnxruntime float32 and int8 "
            "(`quantize_dynamic`, per-channel QInt8: DynamicQuantizeLSTM); openvino with "
            "INFERENCE_PRECISION_HINT=bf16 (CPUs with avx512_bf16 only). max err, mean err: "
            "max and mean |Δ| over the whole output against torch float32 on the same input. "
            "median: per call (streaming: per loop of T one-step calls); speed-up: fastrnn "
            "float32's median ÷ the contender's."
        ),
    ]
    for n in doc["threads"]:
        title = f"### {n} thread{'s' if n > 1 else ''}"
        parts.append(f"{title}\n\n" + format_table([r for r in rows if r["threads"] == n]))
    return "\n\n".join(parts) + "\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workload", nargs="+", choices=NAMES, help=f"default: {' '.join(NAMES)}")
    p.add_argument("--threads", nargs="+", type=int, help="thread counts (default: 1 2)")
    p.add_argument(
        "--min-time",
        type=float,
        help="seconds of timed calls per contender, workload and thread count (default 1)",
    )
    p.add_argument(
        "--out",
        help="write the markdown to this file (a directory: <dir>/<cpu>-precision.md)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"a smoke run for the tests: T = {QUICK_T}, 1 thread (unless --threads), "
        "no minimum time",
    )
    args = p.parse_args(argv)
    names = args.workload or list(NAMES)
    threads = args.threads or ([1] if args.quick else list(runner.default_threads()))
    min_time = args.min_time if args.min_time is not None else (0.0 if args.quick else 1.0)
    T = QUICK_T if args.quick else None

    start = time.perf_counter()
    rows = run(names, threads, min_time, T, runner.print_progress)
    doc = {
        "machine": runner.machine_info(),  # after the run: torch's ISA is known once it loaded
        "names": names,
        "T": {n: WORKLOADS[n].T if T is None else min(T, WORKLOADS[n].T) for n in names},
        "threads": threads,
        "min_time": min_time,
        "seconds": time.perf_counter() - start,
        "date": datetime.date.today().isoformat(),
        "command": " ".join(["python bench/precision.py", *argv]),
        "quick": args.quick,
    }
    text = format_markdown(rows, doc)
    print(text)
    if args.out:
        path = args.out
        if os.path.isdir(path):
            path = os.path.join(path, f"{doc['machine']['slug']}-precision.md")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
