"""fastrnn verify MODEL_FILE: a fastrnn file or torch state_dict against torch and float64; an
ONNX file (*.onnx) against onnxruntime running the file's own recurrent nodes.
Exit code 0: as accurate as the reference; 1: not; 2: the file or the environment is
unusable."""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from .common import dtype_add, fail, hints_add, model_load


def register(sub) -> None:
    p = sub.add_parser(
        "verify",
        help="check a model file against torch and float64 (the accuracy contract), or an "
        "ONNX file against onnxruntime",
        description="Loads MODEL_FILE (a fastrnn file, a safetensors or a torch state_dict), "
        "builds the same torch module from its configuration and weights, runs it, a float64 "
        "copy of it and fastrnn on a random input and prints the parity report: each one's "
        "error against float64 and fastrnn - torch. Exit code 0: fastrnn is as accurate as "
        "torch (its error at most 2x torch's, or under the tolerance); 1: not; 2: the file "
        "could not be used. Needs torch. An ONNX file (*.onnx) is checked against "
        "onnxruntime instead (needs onnx and onnxruntime): onnxruntime runs the file's own "
        "recurrent nodes with their weights (fastrnn.io.onnx.reference_model) on a random "
        "input twice (zero state and full lengths; a random state and lengths from T down "
        "to 1), and every output and state must be within the tolerance of it, as "
        "|fastrnn - onnxruntime| / max(1, |onnxruntime|).",
    )
    p.add_argument("model_file", metavar="MODEL_FILE", help="the file to check")
    hints_add(p)
    p.add_argument(
        "--tolerance",
        type=float,
        default=1e-5,
        help="absolute floor: an error against float64 up to it always passes; for ONNX "
        "files, the largest |fastrnn - onnxruntime| / max(1, |onnxruntime|) that passes "
        "(default: 1e-5)",
    )
    p.add_argument(
        "--steps", type=int, default=16, help="time steps of the random input (16; layers only)"
    )
    p.add_argument(
        "--batch", type=int, default=2, help="batch of the random input (2; layers only)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random input (0)")
    dtype_add(
        p,
        "check the model converted to bf16, int8 or int7 weights against torch float32 with "
        "the stated error bounds",
        choices=("bf16", "int8", "int7"),
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from .._verify import verify

    if args.steps < 1 or args.batch < 1:
        return fail(
            "verify", f"--steps and --batch must be >= 1, got {args.steps} and {args.batch}"
        )
    if args.model_file.lower().endswith(".onnx"):
        if args.dtype is not None:
            return fail("verify", "--dtype applies to torch, safetensors and Keras files, not ONNX")
        return _run_onnx(args)
    if args.node is not None:
        return fail("verify", "--node applies to ONNX files (*.onnx) only")
    if args.layer is not None and not _is_keras(args.model_file):
        return fail("verify", "--layer applies to Keras files (*.keras, *.h5) only")
    dtype, args.dtype = args.dtype, None  # the file is read as it is, converted below
    model, code = model_load("verify", args, args.model_file)
    if model is None:
        return code
    try:
        from .._load import to_torch

        module = to_torch(model)
    except ImportError:
        return fail("verify", "needs torch (pip install torch) to compare against")
    config = model.config
    rng = np.random.default_rng(args.seed)
    if config.is_cell:
        x = None  # verify's own input for cells: a batch of 2 with a random state
    elif config.batch_first:
        x = rng.standard_normal((args.batch, args.steps, config.input_size))
    else:
        x = rng.standard_normal((args.steps, args.batch, config.input_size))
    report = verify(module, x, tolerance=args.tolerance, model=model, seed=args.seed, dtype=dtype)
    if args.json:
        doc = dataclasses.asdict(report)
        doc["verdict"] = report.verdict()
        print(json.dumps(doc, indent=2))
    else:
        print(f"{args.model_file}: {model!r}")
        print(report)
    return 0 if report.ok else 1


def _run_onnx(args) -> int:
    """An ONNX file's recurrent part: fastrnn against onnxruntime on the same nodes."""
    path = args.model_file
    if args.mode is not None or args.prefix is not None:
        return fail(
            "verify", "--mode and --prefix do not apply to ONNX files (use --node to pick a part)"
        )
    try:
        import onnxruntime
    except ImportError:
        return fail("verify", f"checking {path} needs onnxruntime (pip install onnxruntime)")
    from .._modules import build
    from ..io import onnx as onnx_io

    try:
        model = build(*onnx_io.read(path, node=args.node, batch_first=args.batch_first))
        reference = onnx_io.reference_model(path, node=args.node)
    except (OSError, ValueError, ImportError) as e:
        return fail("verify", str(e))
    config = model.config
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    try:
        session = onnxruntime.InferenceSession(
            reference.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
        return fail("verify", f"onnxruntime cannot run the recurrent part of {path}: {e}")
    T, B = args.steps, args.batch
    LD, H = config.num_layers * config.num_directions, config.hidden_size
    lstm = config.mode == "LSTM"
    names = ["output", "h_n"] + (["c_n"] if lstm else [])
    rng = np.random.default_rng(args.seed)
    worst: dict = {}
    runs = []
    for run in range(2):  # zero state, full lengths; then a random state and lengths 1..T
        x = rng.standard_normal((T, B, config.input_size)).astype(np.float32)
        h0 = np.zeros((LD, B, H), np.float32)
        c0 = np.zeros((LD, B, H), np.float32)
        lengths = np.full(B, T, np.int32)
        if run:
            h0 = (rng.standard_normal(h0.shape) * 0.5).astype(np.float32)
            c0 = (rng.standard_normal(c0.shape) * 0.5).astype(np.float32)
            # From T down to 1, evenly, in a random order: both extremes whenever B > 1.
            spread = np.round(np.linspace(T, 1, B)) if B > 1 else np.array([T])
            lengths = rng.permutation(spread).astype(np.int32)
        feeds = {"x": x, "h_0": h0, "lengths": lengths}
        if lstm:
            feeds["c_0"] = c0
        try:
            expected = session.run(None, feeds)
        except Exception as e:  # noqa: BLE001
            return fail("verify", f"onnxruntime failed on the recurrent part of {path}: {e}")
        state = (h0, c0) if lstm else h0
        y, s = model(x.transpose(1, 0, 2) if config.batch_first else x, state, lengths=lengths)
        got = [y.transpose(1, 0, 2) if config.batch_first else y, *(s if lstm else (s,))]
        for name, g, e in zip(names, got, expected):
            g, e = np.asarray(g, np.float64), np.asarray(e, np.float64)
            if g.shape != e.shape:
                return fail("verify", f"{name}: fastrnn gives {g.shape}, onnxruntime {e.shape}")
            with np.errstate(invalid="ignore"):
                same = (g == e) | (np.isnan(g) & np.isnan(e))
                diff = np.where(same, 0.0, np.abs(g - e))
                scaled = np.where(same, 0.0, diff / np.maximum(1.0, np.abs(e)))
            scaled = np.where(np.isnan(scaled), np.inf, scaled)
            i = np.unravel_index(int(np.argmax(scaled)), scaled.shape)
            entry = {
                "shape": list(g.shape),
                "max_abs": float(np.nan_to_num(diff, nan=np.inf).max()),
                "max_error": float(scaled[i]),
                "where": [int(k) for k in i],
                "run": run,
            }
            if name not in worst or entry["max_error"] > worst[name]["max_error"]:
                worst[name] = entry
        runs.append(lengths.tolist())
    max_error = max(e["max_error"] for e in worst.values())
    ok = bool(max_error <= args.tolerance)
    nodes = [n.name for n in reference.graph.node if n.op_type in ("LSTM", "GRU", "RNN")]
    label = f"onnxruntime {onnxruntime.__version__}"
    if args.json:
        doc = {
            "file": path,
            "model": repr(model),
            "reference": label,
            "nodes": nodes,
            "ok": ok,
            "tolerance": args.tolerance,
            "max_error": max_error,
            "input": [T, B, config.input_size],
            "lengths": runs,
            "tensors": worst,
        }
        print(json.dumps(doc, indent=2))
    else:
        verdict = "OK" if ok else "FAIL"
        print(f"{path}: {model!r}")
        print(
            f"fastrnn.verify against {label}: {verdict}  max |fastrnn - onnxruntime| / "
            f"max(1, |onnxruntime|) = {max_error:.3g} (tolerance {args.tolerance:.3g})"
        )
        print(f"  nodes: {', '.join(repr(n) for n in nodes)}")
        print(
            f"  input: x ({T}, {B}, {config.input_size}) time-major, twice: zero state and "
            f"full lengths; a random state and lengths {runs[1]}"
        )
        print(f"  {'tensor':<8} {'shape':<16} {'max abs':<11} {'scaled':<11} worst at")
        for name, e in worst.items():
            shape = "(" + ", ".join(str(d) for d in e["shape"]) + ")"
            flag = "" if e["max_error"] <= args.tolerance else "  <- FAIL"
            print(
                f"  {name:<8} {shape:<16} {e['max_abs']:<11.3g} {e['max_error']:<11.3g} "
                f"{tuple(e['where'])} (run {e['run'] + 1}){flag}"
            )
    return 0 if ok else 1


def _is_keras(path: str) -> bool:
    """A .keras archive, or an HDF5 file (a legacy Keras .h5)."""
    if path.lower().endswith(".keras"):
        return True
    try:
        with open(path, "rb") as f:
            return f.read(8) == b"\x89HDF\r\n\x1a\n"
    except OSError:
        return False
