"""Whole torch models, eager torch against fastrnn.accelerate: end-to-end time per call.

Each workload is a small complete model; the same weights run as plain torch (eager) and as
an accelerated copy, in one process, under torch.inference_mode(), alternating call by call
so that both see the same machine state; reported are the medians and their ratio, per
thread count (torch.set_num_threads(n), which the accelerated modules follow). The outputs
are checked against each other first (max |Δ| printed).

    text_b1 / text_b32   embedding (1000 x 128) -> 2-layer LSTM 256 -> linear 10 on the last
                         step; T = 100; batch 1 and 32
    decoder_b1           a greedy-free decoder loop: 50 steps of an LSTMCell 256 (embedding
                         128 -> cell -> linear 1000), batch 1: the per-step overhead case
    text_classifier, deepspeech, conv_gru, forecaster, seq2seq, subclass
                         the models of tests/api/test_accelerate.py's test_models_people_use,
                         at deployment sizes (bench/torch_models.py)

    python bench/accelerate.py                  # all workloads, 1 and 2 threads, markdown table
    python bench/accelerate.py --threads 2 --repeats 50 --workloads text_b1
    python bench/accelerate.py --json out.json
    python bench/accelerate.py --quick          # tiny models, few calls: checks the script runs

Speed figures name the CPU (lscpu's model name) and the instruction set fastrnn ran.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib.machinery import EXTENSION_SUFFIXES

# Prefer the checkout's python/fastrnn when its core is built in place (as bench/workloads.py).
_PYTHON = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "python")
if any(os.path.isfile(os.path.join(_PYTHON, "fastrnn", "_core" + s)) for s in EXTENSION_SUFFIXES):
    sys.path.insert(0, _PYTHON)

import torch  # noqa: E402
import torch_models  # noqa: E402  (beside this script: its directory is on sys.path)
from torch import nn  # noqa: E402

import fastrnn  # noqa: E402

if hasattr(fastrnn, "accelerate"):
    accelerate = fastrnn.accelerate
else:  # before the package exports it
    from fastrnn._accelerate import accelerate


class TextModel(nn.Module):
    def __init__(self, vocab: int, embed: int, hidden: int, classes: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, tokens):
        y, _ = self.lstm(self.embed(tokens))
        return self.head(y[:, -1])


class Decoder(nn.Module):
    def __init__(self, vocab: int, embed: int, hidden: int, steps: int):
        super().__init__()
        self.steps = steps
        self.embed = nn.Embedding(vocab, embed)
        self.cell = nn.LSTMCell(embed, hidden)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, tokens):  # (B, steps): teacher-forced inputs
        h = c = torch.zeros(tokens.shape[0], self.cell.hidden_size)
        logits = []
        for t in range(self.steps):
            h, c = self.cell(self.embed(tokens[:, t]), (h, c))
            logits.append(self.out(h))
        return torch.stack(logits, 1)


def workloads(quick: bool) -> dict:
    """name -> (what, model factory, input factory)."""
    if quick:
        V, E, H, T, S = 50, 8, 16, 5, 3
    else:
        V, E, H, T, S = 1000, 128, 256, 100, 50

    def text(batch):
        return (
            f"embedding {V}x{E} -> 2-layer LSTM {H} -> linear, B={batch}, T={T}",
            lambda: TextModel(V, E, H, 10),
            lambda: (torch.randint(0, V, (batch, T)),),
        )

    table = {
        "text_b1": text(1),
        "text_b32": text(32),
        "decoder_b1": (
            f"{S} steps of LSTMCell {H} (embedding {E}, linear {V}), B=1",
            lambda: Decoder(V, E, H, S),
            lambda: (torch.randint(0, V, (1, S)),),
        ),
    }
    for name, what, factory, inputs, _ in torch_models.cases("small" if quick else "bench"):
        table[name] = (what or name, factory, lambda inputs=inputs: inputs)
    return table


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or "unknown CPU"


def time_pair(plain, fast, args: tuple, repeats: int, warmup: int) -> tuple[list, list]:
    """Alternating calls of the two models (which goes first alternates too, so that neither
    always runs after the other has filled the caches); seconds per call of each."""
    times = ([], [])
    pairs = ((plain, times[0]), (fast, times[1]))
    with torch.inference_mode():
        for _ in range(warmup):
            plain(*args)
            fast(*args)
        for i in range(repeats):
            for model, out in pairs if i % 2 == 0 else pairs[::-1]:
                t0 = time.perf_counter()
                model(*args)
                out.append(time.perf_counter() - t0)
    return times


def run(names, threads, repeats: int, warmup: int, quick: bool) -> list[dict]:
    table = workloads(quick)
    rows = []
    for name in names:
        what, make_model, make_input = table[name]
        torch.manual_seed(0)
        plain = make_model().eval()
        fast = accelerate(copy.deepcopy(plain), strict=True)
        args = make_input()
        with torch.inference_mode():
            error = (plain(*args) - fast(*args)).abs().max().item()
        for n in threads:
            torch.set_num_threads(n)
            t_plain, t_fast = time_pair(plain, fast, args, repeats, warmup)
            eager, accel = statistics.median(t_plain), statistics.median(t_fast)
            rows.append(
                dict(
                    workload=name,
                    what=what,
                    threads=n,
                    eager_s=eager,
                    accelerated_s=accel,
                    speedup=eager / accel,
                    max_abs_diff=error,
                    repeats=repeats,
                )
            )
            print(
                f"  {name} threads={n}: {eager * 1e3:.3f} ms -> {accel * 1e3:.3f} ms",
                file=sys.stderr,
            )
    return rows


def markdown(rows, header: str) -> str:
    lines = [
        header,
        "",
        "| workload | threads | eager torch | accelerated | speed-up | max abs diff |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['workload']}` | {r['threads']} | {r['eager_s'] * 1e3:.3f} ms | "
            f"{r['accelerated_s'] * 1e3:.3f} ms | {r['speedup']:.2f}x | {r['max_abs_diff']:.1e} |"
        )
    lines.append("")
    for name in dict.fromkeys(r["workload"] for r in rows):
        lines.append(f"- `{name}`: {next(r['what'] for r in rows if r['workload'] == name)}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workloads",
        nargs="+",
        default=None,
        help="names (default: all): " + ", ".join(workloads(False)),
    )
    parser.add_argument("--threads", nargs="+", type=int, default=None, help="default: 1 2")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per model")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--quick", action="store_true", help="tiny models, few calls")
    args = parser.parse_args(argv)
    names = args.workloads or list(workloads(args.quick))
    unknown = [n for n in names if n not in workloads(False)]
    if unknown:
        parser.error(f"unknown workloads {unknown}; known: {list(workloads(False))}")
    threads = args.threads or ([1] if args.quick else [1, 2])
    repeats = args.repeats or (3 if args.quick else 30)
    warmup = 1 if args.quick else 5
    info = fastrnn.cpu_info()
    header = (
        f"fastrnn.accelerate, whole models, on {cpu_name()} ({info['hardware_threads']} "
        f"hardware threads), fastrnn {info['version']} on {info['isa']}, torch "
        f"{torch.__version__}; median of {repeats} alternating calls"
        + (" (--quick: tiny models, not a measurement)" if args.quick else "")
    )
    rows = run(names, threads, repeats, warmup, args.quick)
    print(markdown(rows, header))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(header=header, rows=rows), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
