"""The runner: for each workload and thread count, check every peer against torch, then
time them side by side."""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from typing import Callable

import numpy as np

from .peers import SINGLE_THREADED, TOLERANCE, Case, _try_import, normalize_peers, prepare
from .timing import BUSY, LoadMeter, _time_side_by_side
from .workloads import get_workload


@dataclasses.dataclass
class Result:
    """One peer on one workload at one thread count. Times in microseconds per call
    (streaming: per loop of T steps). median_us is None when the peer was not run (note
    says why). errors: max abs error vs torch per tensor (output, h_n, c_n)."""

    workload: str
    peer: str
    threads: int
    median_us: float | None = None
    p90_us: float | None = None
    gflops: float | None = None
    max_abs_err_vs_torch: float | None = None
    errors: dict = dataclasses.field(default_factory=dict)
    agrees: bool | None = None  # max_abs_err_vs_torch <= TOLERANCE; None: not checked
    samples: int = 0
    others_load: float | None = None  # share of all cores other processes used while timing
    note: str = ""
    threads_used: int | None = None  # fewer than `threads` for a single-threaded peer (tract)

    @property
    def timed(self) -> bool:
        return self.median_us is not None


def skip_reason(peer: str) -> str | None:
    if peer == "fastrnn":
        return None
    if _try_import(peer) is None:
        return f"{peer} is not installed"
    if peer != "torch" and _try_import("torch") is None:
        return f"{peer} runs the ONNX graph exported from torch, which is not installed"
    if peer != "torch" and _try_import("onnx") is None:
        return f"{peer} needs the onnx package for torch.onnx.export, which is not installed"
    return None


def default_threads() -> tuple:
    """(1, 2), or (1,) on a one-core machine."""
    from .._runtime import cpu_info

    hw = cpu_info()["hardware_threads"] or os.cpu_count() or 1
    return (1, 2) if hw >= 2 else (1,)


def run(
    workloads: Iterable = ("default",),
    threads: Sequence[int] = (1, 2),
    peers: Sequence[str] | None = None,
    min_time: float = 1.0,
    progress: Callable[[str], None] | None = None,
    seed: int = 0,
    retries: int = 0,
) -> list:
    """Runs each workload on each peer at each thread count, side by side, and returns a list
    of Result (one per workload × thread count × peer, skipped peers included with a note).

    workloads: names from WORKLOADS or Workload objects. threads: thread counts, every peer
    gets the same. peers: subset of PEERS (default: all; missing ones are skipped). min_time:
    seconds of timing per peer, per workload and thread count (at least 3 rounds are run).
    progress: called with one line of text at each stage. retries: when other processes
    kept more than 10% of the cores busy while timing, time again up to this many times and
    keep the quietest attempt (each record's others_load says how busy it was).
    """
    say = progress or (lambda msg: None)
    ws = [get_workload(w) for w in workloads]
    peers = normalize_peers(peers)
    threads = [int(t) for t in threads]
    if any(t < 1 for t in threads):
        raise ValueError(f"threads must be positive integers, got {threads}")
    skipped = {p: skip_reason(p) for p in peers}
    active = [p for p in peers if skipped[p] is None]
    results = []
    with tempfile.TemporaryDirectory(prefix="fastrnn-bench-") as workdir:
        for i, w in enumerate(ws, 1):
            say(f"[{i}/{len(ws)}] {w.name}: {w.describe()}: building models")
            case = Case(w, seed, workdir)
            for n in threads:
                results.extend(
                    _run_one(
                        case, n, peers, active, skipped, min_time, retries, say, f"[{i}/{len(ws)}]"
                    )
                )
    return results


def _run_one(case, n, peers, active, skipped, min_time, retries, say, tag) -> list:
    w = case.w
    records = {p: Result(w.name, p, n, note=skipped[p] or "") for p in peers}
    for p in peers:
        if p in SINGLE_THREADED:
            records[p].threads_used = 1
    calls = {}
    for peer in active:
        say(f"{tag} {w.name} threads={n}: preparing {peer}")
        try:
            call, errors = prepare(case, peer, n)
        except Exception as e:  # noqa: BLE001  a peer that cannot run this graph is reported, not fatal
            records[peer].note = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
            continue
        rec = records[peer]
        if errors:
            rec.errors = errors
            rec.max_abs_err_vs_torch = max(errors.values())
            rec.agrees = rec.max_abs_err_vs_torch <= TOLERANCE
            if not rec.agrees:
                rec.note = f"disagrees with torch: max abs error {rec.max_abs_err_vs_torch:.2e} > {TOLERANCE:g}"
        elif peer == "fastrnn":
            rec.note = "not checked: torch is not installed"
        calls[peer] = call
    if calls:
        say(f"{tag} {w.name} threads={n}: timing {', '.join(calls)}")
        # Every peer runs at this thread count; the global knobs are set again right before.
        _set_global_threads(n, calls)
        samples, load = None, None
        for attempt in range(1 + retries):
            if attempt:
                say(
                    f"{tag} {w.name} threads={n}: other processes used {100 * load:.0f}% of the "
                    f"cores; timing again ({attempt}/{retries})"
                )
                time.sleep(1.0)  # a pause, in case the other work is about to end
            meter = LoadMeter().start()
            attempt_samples = _time_side_by_side(calls, min_time)
            attempt_load = meter.stop()
            if samples is None or (attempt_load is not None and attempt_load < load):
                samples, load = attempt_samples, attempt_load
            if attempt_load is None or attempt_load <= BUSY:
                break
        flops = w.flops()
        for peer, s in samples.items():
            rec = records[peer]
            us = np.asarray(s) * 1e6
            rec.median_us = float(np.median(us))
            rec.p90_us = float(np.percentile(us, 90))
            rec.gflops = flops / (rec.median_us * 1e3)
            rec.samples = len(s)
            rec.others_load = load
    return [records[p] for p in peers]


def _set_global_threads(n: int, calls) -> None:
    from .._runtime import set_num_threads

    set_num_threads(n)
    if "torch" in calls:
        import torch

        torch.set_num_threads(n)
