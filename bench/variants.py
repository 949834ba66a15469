"""The cells PyTorch lacks, against onnxruntime: the classic GRU (ONNX's default,
linear_before_reset=0) and the LSTM with peepholes, at the lat_gru_256 / lat_lstm_256 shapes
(batch 1, T = 100, I = H = 256), 1 and 2 threads.

Both engines run the same weights: an ONNX graph of one GRU / LSTM node (built with
onnx.helper) for onnxruntime, the same weights in fastrnn's torch gate order for fastrnn.
Outputs are compared first (max abs difference printed); then the two are timed side by
side in rounds, alternating, each call timed alone; medians are reported.

    python bench/variants.py            # the table (~30 s)
    python bench/variants.py --quick    # a few calls (seconds), for the tests
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
from workloads import runner  # noqa: F401  (puts the checkout's fastrnn on the path)

import fastrnn

I = H = 256
T, B = 100, 1


def onnx_model(kind: str, weights: dict):
    """One ONNX node with W, R, B (and P) initializers: ONNX gate orders (GRU z, r, h; LSTM
    i, o, f, c), time-major, X input only."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    G = {"GRU": 3, "LSTM": 4}[kind]
    inits = [numpy_helper.from_array(v, k) for k, v in weights.items()]
    inputs = ["X", "W", "R", "B"]
    attrs = {"hidden_size": H}
    if kind == "LSTM":
        inputs += ["", "", "", "P"]
    else:
        attrs["linear_before_reset"] = 0
    node = helper.make_node(kind, inputs, ["Y", "Y_h"], **attrs)
    graph = helper.make_graph(
        [node],
        "variant",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [T, B, I])],
        [
            helper.make_tensor_value_info("Y", TensorProto.FLOAT, [T, 1, B, H]),
            helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [1, B, H]),
        ],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    assert G
    return model


def pair(kind: str, seed: int = 0):
    """(fastrnn model, ONNX model) with the same weights."""
    rng = np.random.default_rng(seed)
    k = 1 / np.sqrt(H)
    G = {"GRU": 3, "LSTM": 4}[kind]

    def u(*shape):
        return rng.uniform(-k, k, shape).astype(np.float32)

    w_ih, w_hh, b_ih, b_hh = u(G * H, I), u(G * H, H), u(G * H), u(G * H)
    if kind == "GRU":
        model = fastrnn.GRU(I, H, linear_before_reset=False, seed=0)
        order = [1, 0, 2]  # torch r, z, n → ONNX z, r, h
        sd = {"weight_ih_l0": w_ih, "weight_hh_l0": w_hh, "bias_ih_l0": b_ih, "bias_hh_l0": b_hh}
        extra = {}
    else:
        model = fastrnn.LSTM(I, H, peepholes=True, seed=0)
        order = [0, 3, 1, 2]  # torch i, f, g, o → ONNX i, o, f, c
        peep = u(3 * H)  # fastrnn: i, f, o
        sd = {
            "weight_ih_l0": w_ih,
            "weight_hh_l0": w_hh,
            "bias_ih_l0": b_ih,
            "bias_hh_l0": b_hh,
            "weight_peep_l0": peep,
        }
        p_i, p_f, p_o = peep[:H], peep[H : 2 * H], peep[2 * H :]
        extra = {"P": np.concatenate([p_i, p_o, p_f])[None]}
    model.load_state_dict(sd)

    def onnx_rows(a):
        return np.concatenate([a[g * H : (g + 1) * H] for g in order])

    onnx_w = {
        "W": onnx_rows(w_ih)[None],
        "R": onnx_rows(w_hh)[None],
        "B": np.concatenate([onnx_rows(b_ih), onnx_rows(b_hh)])[None],
        **extra,
    }
    return model, onnx_model(kind, onnx_w)


def median_us(call, n: int) -> float:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        samples.append(time.perf_counter() - t0)
    return 1e6 * statistics.median(samples)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a few calls per cell (for the tests)")
    p.add_argument("--rounds", type=int, default=15, help="rounds of alternating bursts")
    args = p.parse_args(argv)
    try:
        import onnxruntime as ort
    except ImportError:
        print("needs onnxruntime and onnx (pip install onnx onnxruntime)", file=sys.stderr)
        return 2
    rounds, burst = (2, 3) if args.quick else (args.rounds, 10)
    cpu = runner.machine_info()["cpu"]
    print(
        f"fastrnn {fastrnn.__version__} ({fastrnn.cpu_info()['isa']}) vs onnxruntime "
        f"{ort.__version__} · {cpu}\n"
    )
    print("| cell | threads | fastrnn µs | onnxruntime µs | onnxruntime ÷ fastrnn | max |Δ| |")
    print("|---|--:|--:|--:|--:|--:|")
    x = np.random.default_rng(1).standard_normal((T, B, I)).astype(np.float32)
    for kind, label in (("GRU", "classic GRU (lbr=0)"), ("LSTM", "LSTM with peepholes")):
        model, graph = pair(kind)
        for threads in (1, 2):
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            session = ort.InferenceSession(
                graph.SerializeToString(), opts, providers=["CPUExecutionProvider"]
            )
            y_ort = session.run(["Y"], {"X": x})[0][:, 0]
            y_fast = model(x, num_threads=threads)[0]
            diff = float(np.max(np.abs(y_ort - y_fast)))
            calls = {
                "fastrnn": lambda m=model, n=threads: m(x, num_threads=n),
                "onnxruntime": lambda s=session: s.run(["Y"], {"X": x}),
            }
            times = {name: [] for name in calls}
            for r in range(rounds):
                names = list(calls) if r % 2 == 0 else list(calls)[::-1]
                for name in names:
                    calls[name]()  # untimed: warm
                    times[name].append(median_us(calls[name], burst))
            fast, peer = (
                statistics.median(times["fastrnn"]),
                statistics.median(times["onnxruntime"]),
            )
            print(
                f"| {label} | {threads} | {fast:.0f} | {peer:.0f} | {peer / fast:.2f}× | {diff:.1e} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
