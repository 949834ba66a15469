"""Tables, notes, JSON and charts from the runner's results."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys

from .machine import machine_info
from .peers import PARITY_TOLERANCE, PEERS, SINGLE_THREADED, TOLERANCE
from .runner import Result
from .timing import BUSY
from .workloads import WORKLOADS


def _grouped(results) -> dict:
    """{(workload, threads): {peer: Result}} in first-seen order."""
    groups: dict = {}
    for r in results:
        groups.setdefault((r.workload, r.threads), {})[r.peer] = r
    return groups


def best_peer(group: dict):
    """The fastest timed peer other than fastrnn that agrees with torch (or was not checked)."""
    rivals = [r for p, r in group.items() if p != "fastrnn" and r.timed and r.agrees is not False]
    return min(rivals, key=lambda r: r.median_us) if rivals else None


def speedup(group: dict) -> float | None:
    """Best peer's median ÷ fastrnn's: above 1 means fastrnn is faster."""
    me, best = group.get("fastrnn"), best_peer(group)
    if me is None or not me.timed or best is None:
        return None
    return best.median_us / me.median_us


def format_time(us: float | None) -> str:
    """Three significant digits in µs, ms or s."""
    if us is None:
        return "—"
    for unit, scale in (("µs", 1.0), ("ms", 1e3), ("s", 1e6)):
        v = us / scale
        if float(f"{v:.3g}") < 1000 or unit == "s":
            return f"{float(f'{v:.3g}'):g} {unit}"
    return f"{us:g} µs"


def _peer_columns(results) -> list:
    seen = {r.peer for r in results if r.timed}
    return [p for p in PEERS if p in seen]


def format_notes(results) -> list:
    """Distinct notes, each with where it applies."""
    notes: dict = {}
    for r in results:
        if r.note:
            notes.setdefault((r.peer, r.note), []).append(f"{r.workload}@{r.threads}")
    busy = []
    for (name, n), g in _grouped(results).items():
        loads = [r.others_load for r in g.values() if r.others_load is not None]
        if loads and loads[0] > BUSY:
            busy.append(f"{name}@{n} {100 * loads[0]:.0f}%")
    out = []
    if busy:
        out.append(
            f"other processes kept the cores busy while timing (share of all cores): {', '.join(busy)}; "
            "those rows are less trustworthy"
        )
    for (peer, note), where in notes.items():
        if note.startswith(peer):
            out.append(note)
        else:
            out.append(f"{peer}: {note} ({', '.join(where)})")
    return out


def format_markdown(results, bounds: dict | None = None) -> str:
    """A markdown table: one row per workload × threads; each peer's median with its time
    relative to fastrnn; the speedup of fastrnn over the best peer; fastrnn's GFLOP/s.
    bounds: optional {(workload, threads): lower bound in µs}, adds fastrnn ÷ bound."""
    peers = _peer_columns(results)
    rivals = [p for p in peers if p != "fastrnn"]
    head = (
        ["workload", "threads", "fastrnn"]
        + rivals
        + ["best peer", "fastrnn speedup", "fastrnn GFLOP/s"]
    )
    if bounds:
        head += ["lower bound", "fastrnn ÷ bound"]
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["--:"] * (len(head) - 1)) + "|",
    ]
    for (name, n), g in _grouped(results).items():
        me = g.get("fastrnn")
        row = [f"`{name}`", str(n), _cell(me, None)]
        for p in rivals:
            row.append(_cell(g.get(p), me))
        best, s = best_peer(g), speedup(g)
        row.append(best.peer if best else "—")
        row.append(f"**{s:.2f}×**" if s else "—")
        row.append(f"{me.gflops:.1f}" if me and me.timed else "—")
        if bounds:
            b = bounds.get((name, n))
            row.append(format_time(b) if b else "—")
            row.append(f"{me.median_us / b:.2f}" if b and me and me.timed else "—")
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    legend = (
        "Median time per call (streaming: per 100 steps). (×r): that peer's median ÷ fastrnn's "
        "(above 1: fastrnn is faster). fastrnn speedup: the best peer's median ÷ fastrnn's. "
        f"⚠: output differs from torch by more than {TOLERANCE:g}."
    )
    single = sorted({r.peer for r in results if r.timed and _on_fewer_threads(r)})
    if single:
        legend += (
            f" (1t): {' and '.join(single)} ran on one thread, being single-threaded (it is "
            "timed at every thread count all the same, as a user would run it)."
        )
    lines.append(legend)
    notes = format_notes(results)
    if notes:
        lines.append("")
        lines.extend(f"- {n}" for n in notes)
    return "\n".join(lines)


def _cell(r: Result | None, me: Result | None) -> str:
    if r is None or not r.timed:
        return "—"
    text = format_time(r.median_us)
    if me is not None and me.timed:
        text += f" (×{r.median_us / me.median_us:.2f})"
    if _on_fewer_threads(r):
        text += f" ({r.threads_used}t)"
    if r.agrees is False:
        text += " ⚠"
    return text


def _on_fewer_threads(r: Result) -> bool:
    """True when the peer ran on fewer threads than the row's thread count (tract)."""
    return r.threads_used is not None and r.threads_used < r.threads


def format_detail(results) -> str:
    """Plain text, one line per peer: median, p90, GFLOP/s, error vs torch, time ÷ fastrnn."""
    lines = []
    head = f"{'threads':>7}  {'peer':<12}{'median':>10}{'p90':>10}{'GFLOP/s':>9}{'max|Δ| vs torch':>17}  vs fastrnn"
    current = None
    for (name, n), g in _grouped(results).items():
        if name != current:
            current = name
            w = WORKLOADS.get(name)
            if lines:
                lines.append("")
            lines.append(
                f"{name}: {w.describe()} · {w.flops() / 1e9:.3g} GFLOP per call" if w else name
            )
            lines.append(head)
        me = g.get("fastrnn")
        for peer, r in g.items():
            if not r.timed:
                continue
            err = "—" if r.max_abs_err_vs_torch is None else f"{r.max_abs_err_vs_torch:.1e}"
            if r.agrees is False:
                err += " ⚠"
            rel = ""
            if me is not None and me.timed:
                rel = (
                    "1.00×"
                    if peer == "fastrnn"
                    else f"{r.median_us / me.median_us:.2f}× slower"
                    if r.median_us >= me.median_us
                    else f"{me.median_us / r.median_us:.2f}× faster"
                )
            name = f"{peer} (1t)" if _on_fewer_threads(r) else peer
            lines.append(
                f"{n:>7}  {name:<12}{format_time(r.median_us):>10}{format_time(r.p90_us):>10}"
                f"{r.gflops:>9.1f}{err:>17}  {rel}"
            )
    return "\n".join(lines)


def parity_lines(results) -> tuple:
    """(lines, ok): fastrnn's max abs error vs torch per workload (worst over thread counts),
    PASS when within PARITY_TOLERANCE. ok is None when nothing was checked."""
    worst: dict = {}
    for r in results:
        if r.peer != "fastrnn" or not r.errors:
            continue
        acc = worst.setdefault(r.workload, {})
        for k, v in r.errors.items():
            acc[k] = max(acc.get(k, 0.0), v)
    lines, ok = [], None
    for name, errs in worst.items():
        passed = max(errs.values()) <= PARITY_TOLERANCE
        ok = passed if ok is None else ok and passed
        detail = ", ".join(f"{k} {v:.1e}" for k, v in errs.items())
        lines.append(
            f"parity vs torch, {name}: max abs {detail} → {'PASS' if passed else 'FAIL'} (≤ {PARITY_TOLERANCE:g})"
        )
    return lines, ok


def to_json(results, machine: dict | None = None, extra: dict | None = None) -> str:
    doc = {
        "machine": machine if machine is not None else machine_info(),
        "workloads": {
            name: dict(dataclasses.asdict(w), flops=w.flops())
            for name, w in WORKLOADS.items()
            if any(r.workload == name for r in results)
        },
        "results": [dataclasses.asdict(r) for r in results],
    }
    if extra:
        doc.update(extra)
    return json.dumps(doc, indent=2, ensure_ascii=False, default=_json_default)


def _json_default(o):
    if isinstance(o, float) and not math.isfinite(o):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def plot(results, path: str, title: str = "fastrnn vs peers") -> None:
    """A PNG chart: per thread count, each peer's time ÷ fastrnn's per workload (log scale;
    above 1 means fastrnn is faster). Raises ImportError when matplotlib is missing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    groups = _grouped(results)
    thread_counts = sorted({n for _, n in groups})
    names = list(dict.fromkeys(name for name, _ in groups))
    rivals = [p for p in _peer_columns(results) if p != "fastrnn"]
    fig, axes = plt.subplots(
        len(thread_counts),
        1,
        figsize=(max(8, 1.1 * len(names) + 2), 3.6 * len(thread_counts)),
        squeeze=False,
    )
    width = 0.8 / max(1, len(rivals))
    for ax, n in zip(axes[:, 0], thread_counts):
        for k, peer in enumerate(rivals):
            xs, ys = [], []
            for i, name in enumerate(names):
                g = groups.get((name, n), {})
                me, r = g.get("fastrnn"), g.get(peer)
                if me and r and me.timed and r.timed:
                    xs.append(i + (k - (len(rivals) - 1) / 2) * width)
                    ys.append(r.median_us / me.median_us)
            label = f"{peer} (1 thread)" if n > 1 and peer in SINGLE_THREADED else peer
            bars = ax.bar(xs, ys, width, label=label)
            ax.bar_label(bars, fmt="%.2f", fontsize=6, padding=1)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        times = ticker.FuncFormatter(lambda v, _: f"{v:g}×")
        ax.yaxis.set_major_formatter(times)
        ax.yaxis.set_minor_formatter(times)
        ax.tick_params(axis="y", which="minor", labelsize=7)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("peer time ÷ fastrnn time")
        ax.set_title(
            f"{title}, {n} thread{'s' if n > 1 else ''} (above 1: fastrnn faster)", fontsize=10
        )
        if rivals:
            ax.legend(fontsize=8)
        ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_progress(msg: str) -> None:
    """A progress callback that writes to stderr."""
    print(msg, file=sys.stderr, flush=True)


def section_replace(path: str, begin: str, end: str, markdown: str) -> bool:
    """Replaces the text between the markers begin and end of the file at path (a results
    table in a README); False if the file or a marker is absent."""
    if not os.path.exists(path):
        return False
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if begin not in text or end not in text:
        return False
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{head}{begin}\n{markdown}\n{end}{tail}")
    return True
