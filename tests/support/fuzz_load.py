"""A mutation fuzzer for fastrnn.load: every mutated file must load (a model that then runs)
or fail with ValueError or TypeError — never another exception, never a crash, and never
an allocation beyond a small bound (tracemalloc's peak per case, which sees numpy's buffers
even when their pages are never touched).

    python tests/support/fuzz_load.py --cases 2000 --seed 0     # what tests/hardening/test_fuzz_load.py runs
    python tests/support/fuzz_load.py --cases 200000 --seed 7   # a longer campaign

Seeds come from tests/support/corpus/ (see make_corpus.py). Each case picks a seed file and one
mutator: byte-level (bit flips, interesting bytes, truncation, junk, deleted or repeated
slices, the header-length field) or, for safetensors files, structured (a tensor's shape,
offsets or dtype; the metadata's values and types; duplicate keys; deeply nested or
non-UTF-8 JSON; NaN weights). Case k of a run with seed s is reproducible alone:
`python tests/support/fuzz_load.py --seed s --only k` prints what it did.

Exit status 0 when every case passed; otherwise the failing cases are printed (seed file,
mutator, exception) and the status is 1. A crash (signal) shows as a non-zero status
with the last "case k" line printed by --verbose.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import struct
import sys
import tempfile
import tracemalloc

import numpy as np

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

# A case may allocate at most this much (Python and numpy, tracemalloc's peak): the seeds are
# < 3 KB, so anything near the bound means a size from the file was trusted.
PEAK_LIMIT = 16 << 20

INTERESTING_INTS = [
    0,
    1,
    -1,
    2,
    3,
    4,
    7,
    8,
    255,
    256,
    4096,
    4097,
    65535,
    2**16,
    2**24,
    2**24 + 1,
    2**31 - 1,
    2**31,
    2**32,
    2**32 + 1,
    2**40,
    2**53 + 1,
    2**62,
    2**63 - 1,
    2**63,
    2**64 - 1,
    2**64,
    -(2**31),
    -(2**63),
    10**9,
    10**30,
]
INTERESTING_VALUES = INTERESTING_INTS + [
    1.5,
    -0.0,
    float("nan"),
    float("inf"),
    "3",
    "",
    "F32",
    None,
    True,
    False,
    [],
    {},
    [3],
    [[3]],
    {"a": 1},
]
DTYPES = ["F32", "F16", "F64", "BF16", "I32", "I64", "U8", "BOOL", "F8_E4M3", "f32", "", 7, None]
META_KEYS = [
    "format",
    "format_version",
    "class",
    "mode",
    "input_size",
    "hidden_size",
    "num_layers",
    "proj_size",
    "bidirectional",
    "bias",
    "batch_first",
    "nonlinearity",
]
META_VALUES = [
    "0",
    "1",
    "2",
    "3",
    "-1",
    "1e3",
    "0x10",
    " 3",
    "3 ",
    "",
    "true",
    "false",
    "True",
    "yes",
    "4611686018427387904",
    "1000000000",
    "16777216",
    "16777217",
    "4096",
    "4097",
    "9" * 40,
    "٣",
    "LSTM",
    "GRU",
    "RNN",
    "RNN_TANH",
    "RNN_RELU",
    "LSTMCell",
    "GRUCell",
    "RNNCell",
    "lstm",
    "tanh",
    "relu",
    "fastrnn",
    "2",
    "999999999",
]


def seeds() -> list[tuple[str, bytes]]:
    """The seed files; torch files only where torch is installed (reading them needs it)."""
    try:
        import torch  # noqa: F401 - only whether it imports
    except ImportError:
        kinds = (".safetensors",)
    else:
        kinds = (".safetensors", ".pt")
    out = []
    for name in sorted(os.listdir(CORPUS)):
        if name.endswith(kinds):
            with open(os.path.join(CORPUS, name), "rb") as f:
                out.append((name, f.read()))
    return out


# --- byte-level mutators ------------------------------------------------------------------


def flip_bits(rng, data: bytes) -> tuple[bytes, str]:
    b = bytearray(data)
    n = rng.randint(1, 8)
    for _ in range(n):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b), f"flip {n} bits"


def set_bytes(rng, data: bytes) -> tuple[bytes, str]:
    b = bytearray(data)
    i = rng.randrange(len(b))
    n = rng.randint(1, 8)
    value = rng.choice([0x00, 0xFF, 0x7F, 0x80, 0x22, 0x5D, 0x7D, 0x2C, rng.randrange(256)])
    b[i : i + n] = bytes([value]) * len(b[i : i + n])
    return bytes(b), f"set {n} bytes at {i} to {value:#x}"


def truncate(rng, data: bytes) -> tuple[bytes, str]:
    n = rng.randrange(len(data))
    return data[:n], f"truncate to {n}"


def append_junk(rng, data: bytes) -> tuple[bytes, str]:
    n = rng.choice([1, 3, 4, 8, 100])
    return data + bytes(rng.randrange(256) for _ in range(n)), f"append {n} bytes"


def delete_slice(rng, data: bytes) -> tuple[bytes, str]:
    i = rng.randrange(len(data))
    n = rng.randint(1, 64)
    return data[:i] + data[i + n :], f"delete {n} bytes at {i}"


def repeat_slice(rng, data: bytes) -> tuple[bytes, str]:
    i = rng.randrange(len(data))
    n = rng.randint(1, 64)
    return data[: i + n] + data[i : i + n] + data[i + n :], f"repeat {n} bytes at {i}"


def header_length(rng, data: bytes) -> tuple[bytes, str]:
    n = struct.unpack("<Q", data[:8])[0] if len(data) >= 8 else 0
    value = rng.choice([0, 1, 2, n - 1, n + 1, n + 8, len(data), 2**63, 2**64 - 1, 100 << 20])
    value %= 2**64
    return struct.pack("<Q", value) + data[8:], f"header length {value}"


BYTE_MUTATORS = [flip_bits, set_bytes, truncate, append_junk, delete_slice, repeat_slice]


# --- structured mutators (safetensors) -----------------------------------------------------


def split(data: bytes):
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def join(header, body: bytes, text: str | None = None) -> bytes:
    raw = (text if text is not None else json.dumps(header, allow_nan=True)).encode()
    return struct.pack("<Q", len(raw)) + raw + body


def tensor_names(header) -> list[str]:
    return [k for k in header if k != "__metadata__"]


def mutate_shape(rng, header, body):
    name = rng.choice(tensor_names(header))
    shape = header[name]["shape"]
    choice = rng.randrange(6)
    if choice == 0:
        new = [rng.choice(INTERESTING_INTS) for _ in shape]
    elif choice == 1:
        new = [rng.choice(INTERESTING_INTS) for _ in range(rng.randint(0, 10))]
    elif choice == 2:
        new = rng.choice(INTERESTING_VALUES)
    elif choice == 3:
        new = list(reversed(shape)) + [1]
    elif choice == 4:
        new = [rng.choice(INTERESTING_VALUES) for _ in shape]
    else:  # a consistent huge shape: byte range updated to match (nothing else changes)
        new = [2**20, 2**20]
        begin = header[name]["data_offsets"][0]
        header[name]["data_offsets"] = [begin, begin + 4 * 2**40]
    header[name]["shape"] = new
    return join(header, body), f"{name} shape {new!r:.80}"


def mutate_offsets(rng, header, body):
    name = rng.choice(tensor_names(header))
    begin, end = header[name]["data_offsets"]
    choice = rng.randrange(5)
    if choice == 0:
        new = [rng.choice(INTERESTING_INTS), end]
    elif choice == 1:
        new = [begin, rng.choice(INTERESTING_INTS)]
    elif choice == 2:
        new = [end, begin]
    elif choice == 3:
        new = rng.choice(INTERESTING_VALUES)
    else:
        new = [begin, end, end]
    header[name]["data_offsets"] = new
    return join(header, body), f"{name} data_offsets {new!r:.80}"


def mutate_dtype(rng, header, body):
    name = rng.choice(tensor_names(header))
    new = rng.choice(DTYPES)
    header[name]["dtype"] = new
    return join(header, body), f"{name} dtype {new!r}"


def mutate_entry(rng, header, body):
    name = rng.choice(tensor_names(header))
    choice = rng.randrange(6)
    if choice == 0:
        del header[name]
        what = "deleted"
    elif choice == 1:
        header[name]["extra"] = 1
        what = "extra field"
    elif choice == 2:
        del header[name][rng.choice(["dtype", "shape", "data_offsets"])]
        what = "field deleted"
    elif choice == 3:
        header[name] = rng.choice(INTERESTING_VALUES)
        what = f"replaced by {header[name]!r:.40}"
    elif choice == 4:
        header[name + "_copy"] = dict(header[name])
        what = "copied (overlap)"
    else:
        header[rng.choice(["weight_ih_l9", "weight_hr_l0", "bias_ih", "x" * 300])] = header.pop(
            name
        )
        what = "renamed"
    return join(header, body), f"{name} {what}"


def mutate_metadata(rng, header, body):
    md = header.get("__metadata__")
    choice = rng.randrange(5)
    if not isinstance(md, dict) or choice == 0:
        header["__metadata__"] = rng.choice(INTERESTING_VALUES + [["a"], "fastrnn"])
        return join(header, body), f"__metadata__ = {header['__metadata__']!r:.40}"
    key = rng.choice(META_KEYS)
    if choice == 1:
        md.pop(key, None)
        return join(header, body), f"metadata {key} deleted"
    if choice == 2:
        md[key] = rng.choice([3, None, True, [1], {"a": "b"}, 1.5])
        return join(header, body), f"metadata {key} = {md[key]!r} (not a string)"
    md[key] = rng.choice(META_VALUES)
    return join(header, body), f"metadata {key} = {md[key]!r:.40}"


def duplicate_key(rng, header, body):
    text = json.dumps(header)
    name = rng.choice(tensor_names(header) + (["__metadata__"] if "__metadata__" in header else []))
    text = text[:-1] + f", {json.dumps(name)}: {json.dumps(header[name])}}}"
    return join(header, body, text), f"duplicate key {name!r}"


def bad_json(rng, header, body):
    choice = rng.randrange(6)
    if choice == 0:
        text, what = "[" * 100_000 + "]" * 100_000, "deeply nested arrays"
    elif choice == 1:
        text, what = '{"a":' * 50_000 + "1" + "}" * 50_000, "deeply nested objects"
    elif choice == 2:
        raw = b"\xff\xfe" + json.dumps(header).encode()[2:]
        return struct.pack("<Q", len(raw)) + raw + body, "not UTF-8"
    elif choice == 3:
        text, what = json.dumps(header)[:-1], "unterminated"
    elif choice == 4:
        text, what = '{"a": ' + "9" * 5000 + "}", "a 5000-digit number"
    else:
        text, what = rng.choice(["null", "1", '"x"', "[]", "{}", "NaN", "true"]), "not an object"
    return join(header, body, text), f"header JSON: {what}"


def nan_weights(rng, header, body):
    """Valid files whose weights hold NaN / ±inf: these must load (torch loads them too)."""
    b = bytearray(body)
    name = rng.choice(tensor_names(header))
    begin, end = header[name]["data_offsets"]
    size = {"F32": 4, "F16": 2, "F64": 8, "BF16": 2}[header[name]["dtype"]]
    value = rng.choice([np.nan, np.inf, -np.inf])
    dtype = {4: "<f4", 2: "<f2", 8: "<f8"}[size]
    for i in range(begin, end, size):
        if rng.random() < 0.5:
            b[i : i + size] = np.array(value, dtype).tobytes()
    return join(header, bytes(b)), f"{name} NaN/inf weights ({value})"


STRUCTURED_MUTATORS = [
    mutate_shape,
    mutate_offsets,
    mutate_dtype,
    mutate_entry,
    mutate_metadata,
    duplicate_key,
    bad_json,
    nan_weights,
]


def mutate(rng: random.Random, name: str, data: bytes) -> tuple[bytes, str]:
    if name.endswith(".safetensors") and rng.random() < 0.6:
        header, body = split(data)
        return rng.choice(STRUCTURED_MUTATORS)(rng, header, body)
    if rng.random() < 0.1 and name.endswith(".safetensors"):
        return header_length(rng, data)
    out, what = rng.choice(BYTE_MUTATORS)(rng, data)
    if rng.random() < 0.2:  # sometimes stack a second byte mutation
        out, more = rng.choice(BYTE_MUTATORS)(rng, out or b"\0")
        what += "; " + more
    return out, what


# --- running one case -------------------------------------------------------------------


def exercise(model) -> None:
    """A loaded model must run: one forward call on a tiny input."""
    I = model.input_size
    if type(model).__name__.endswith("Cell"):
        model(np.ones((2, I), np.float32))
    else:
        model(np.ones((3, 2, I), np.float32))


def run_case(fastrnn, path: str, data: bytes) -> str:
    """'ok', 'ValueError' or 'TypeError'; raises anything else. Checks the allocation peak."""
    with open(path, "wb") as f:
        f.write(data)
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        model = fastrnn.load(path)
        exercise(model)
        outcome = "ok"
    except (ValueError, TypeError) as e:
        outcome = "ValueError" if isinstance(e, ValueError) else "TypeError"
        if isinstance(e, ValueError) and path not in str(e):
            raise AssertionError(f"ValueError does not name the file: {e}") from e
    peak = tracemalloc.get_traced_memory()[1] - base
    if peak > PEAK_LIMIT:
        raise AssertionError(f"allocated {peak} bytes (limit {PEAK_LIMIT})")
    return outcome


def run(cases: int, seed: int, only: int | None = None, verbose: bool = False) -> dict:
    import fastrnn

    corpus = seeds()
    assert corpus, f"no seed files in {CORPUS}"
    outcomes: dict[str, int] = {}
    failures = []
    for name, _ in corpus:  # warm-up: first loads import code (torch's unpickler: ~60 MB)
        exercise(fastrnn.load(os.path.join(CORPUS, name)))
    tracemalloc.start()
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(cases):
            rng = random.Random(f"{seed}:{k}")
            name, data = corpus[rng.randrange(len(corpus))]
            mutated, what = mutate(rng, name, data)
            if only is not None and k != only:
                continue
            if verbose or only is not None:
                print(f"case {k}: {name}: {what}", flush=True)
            path = os.path.join(tmp, f"case{os.path.splitext(name)[1]}")
            try:
                outcome = run_case(fastrnn, path, mutated)
            except BaseException as e:  # noqa: BLE001 - every escape is a finding: reported
                failures.append(f"case {k}: {name}: {what}: {type(e).__name__}: {str(e)[:300]}")
                outcome = "FAIL"
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    tracemalloc.stop()
    return {"outcomes": outcomes, "failures": failures}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", type=int, default=None, help="run case k alone, verbosely")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.cases, args.seed, args.only, args.verbose)
    print(json.dumps(result["outcomes"], sort_keys=True))
    for line in result["failures"]:
        print(line)
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
