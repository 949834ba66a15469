"""Benchmark workloads and a side-by-side runner: fastrnn against torch, onnxruntime, openvino
and tract, in one process, alternating, at the same thread count.

Used by `fastrnn bench` and by the scripts in the repository's bench/ folder. Every peer is
optional and imported only when asked for; a missing peer is skipped with a note.

How a comparison is made, for one workload at one thread count:

1. One torch module (seeded) gives the weights to everyone: fastrnn copies them with
   `from_torch`, onnxruntime, openvino and tract run the ONNX graph exported from that module
   (legacy TorchScript exporter, opset 17). Without torch, fastrnn alone runs a seeded
   `fastrnn.LSTM(..., seed=...)` (or GRU/RNN).
2. Every peer's output and final state are compared with torch's whole-sequence call before
   anything is timed; the max abs error is recorded, and a peer further than `TOLERANCE`
   is flagged in every table (it is still timed, never dropped silently).
3. The peers are timed in rounds: each round gives each peer a short burst of calls (a
   burst lasts about 50 ms, at least 2 calls), every call timed alone, after a 50 ms pause
   in which the previous peer's worker threads stop spinning; the order of the peers
   rotates from round to round. Bursts keep each peer's weights warm in cache; rounds
   spread the machine's noise over everyone alike. Reported: median and p90 of the calls.
   Other processes' use of the cores is measured meanwhile (LoadMeter); a noisy block can be
   timed again (run(..., retries=)).

Streaming workloads are 100 single-step calls carrying the state; one timed call is the
whole loop of 100 steps. fastrnn runs its serving API: `stream = model.stream(batch=B)` once,
then `stream.step(x_t)` with x_t of shape (B, I), the state carried inside the stream (reset
at the start of each timed loop). torch calls the module with x[t:t+1] and the previous
state. onnxruntime, openvino and tract run a graph exported for one step, with the state as
inputs (h0, c0) that the loop feeds back.

tract is single-threaded: it runs at every thread count (a user's choice stays a user's
choice), but its records say threads_used=1 and the tables mark it "(1t)".

FLOPs count the matrix products only (2 per multiply-add of x·W_ihᵀ and h·W_hhᵀ): the gate
nonlinearities and elementwise updates are O(G) per step and not counted.

The package is split by role: `workloads` (the named shapes), `peers` (building and calling
each peer, checking it against torch), `timing` (bursts in rotating rounds, the load meter),
`runner` (run(): check, then time), `report` (tables, JSON, charts), `machine` (what the
results were measured on). Each name below is importable from here and loads only its own
module when first used: `fastrnn --help` needs `workloads` alone.
"""

from __future__ import annotations

import importlib

_WHERE = {
    # workloads
    "ALL": "workloads",
    "WORKLOADS": "workloads",
    "Workload": "workloads",
    "get_workload": "workloads",
    # peers
    "Case": "peers",
    "ONNX_OPSET": "peers",
    "PARITY_TOLERANCE": "peers",
    "PEERS": "peers",
    "SINGLE_THREADED": "peers",
    "TOLERANCE": "peers",
    "_PEER_ALIASES": "peers",
    "_PREPARE": "peers",
    "_as_triple": "peers",
    "_export_onnx": "peers",
    "_fastrnn_module": "peers",
    "_from_call": "peers",
    "_from_onnx_call": "peers",
    "_from_onnx_stream": "peers",
    "_from_stream": "peers",
    "_from_stream_steps": "peers",
    "_imports": "peers",
    "_onnx_graph_call": "peers",
    "_ov_core": "peers",
    "_prepare_fastrnn": "peers",
    "_prepare_onnxruntime": "peers",
    "_prepare_openvino": "peers",
    "_prepare_torch": "peers",
    "_prepare_tract": "peers",
    "_state_names": "peers",
    "_to_numpy": "peers",
    "_torch_module": "peers",
    "_try_import": "peers",
    "compare": "peers",
    "normalize_peers": "peers",
    "peer_versions": "peers",
    "prepare": "peers",
    # timing
    "BUSY": "timing",
    "LoadMeter": "timing",
    "wait_for_quiet": "timing",
    "_BURST_SECONDS": "timing",
    "_GAP_SECONDS": "timing",
    "_MIN_ROUNDS": "timing",
    "_time_side_by_side": "timing",
    # runner
    "Result": "runner",
    "_run_one": "runner",
    "_set_global_threads": "runner",
    "default_threads": "runner",
    "run": "runner",
    "skip_reason": "runner",
    # report
    "_cell": "report",
    "_grouped": "report",
    "_json_default": "report",
    "_on_fewer_threads": "report",
    "_peer_columns": "report",
    "best_peer": "report",
    "format_detail": "report",
    "format_markdown": "report",
    "format_notes": "report",
    "format_time": "report",
    "parity_lines": "report",
    "plot": "report",
    "print_progress": "report",
    "section_replace": "report",
    "speedup": "report",
    "to_json": "report",
    # machine
    "CPU_FLAGS": "machine",
    "ISA_VARIABLES": "machine",
    "_INTEL_CORES": "machine",
    "_cpuinfo_fields": "machine",
    "_zen": "machine",
    "cpu_caches": "machine",
    "cpu_generation": "machine",
    "cpu_slug": "machine",
    "machine_info": "machine",
}


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(list(globals()) + list(_WHERE))
