"""Fuzzing the loaders: fastrnn.load (safetensors and torch files) and load_state_dict with
corrupted, truncated and adversarial inputs. Every case ends in a loaded model that runs, or
in ValueError / TypeError — never another exception, never a crash, never a huge allocation.

- test_mutation_fuzz: tests/support/fuzz_load.py over the seed corpus in tests/support/corpus/ (made by
  tests/support/corpus/make_corpus.py), 2000 mutations with a fixed seed, in a subprocess (a crash
  fails the test instead of killing the run), each case's allocation peak ≤ 16 MiB.
- Targeted adversarial files: declared 2^40-element tensors, negative and overflowing sizes
  and offsets, wrong dtypes, duplicate keys, deeply nested JSON, absurd metadata
  (hidden_size=2**62, num_layers=10**9, weight counts beyond 2^32), torch files with
  broadcast views, sparse, meta and float8 tensors.
- load_state_dict: 600 random mutations of valid state dicts (keys, dtypes, shapes,
  broadcast views, non-arrays, NaN) on every class; a failed load keeps the old weights.

NaN and ±inf weights: accepted. torch accepts them (nn.Module.load_state_dict does not
look at values) and propagates NaN through the computation; fastrnn does the same, exactly
where torch does (tests/test_edge_numerics.py checks the positions). Refusing them would
break loading a checkpoint torch itself loads, and a model file cannot tell a deliberate
inf (e.g. a saturating bias) from a diverged training run.
"""

from __future__ import annotations

import json
import os
import random
import struct
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

import fastrnn

SUPPORT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support")
CORPUS = os.path.join(SUPPORT, "corpus")
FUZZ_CASES = 2000
FUZZ_SEED = 0
# Allocation bound for one adversarial load (tracemalloc peak, numpy buffers included).
PEAK_LIMIT = 16 << 20


def raw(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def write(path, header, body, text=None):
    text = (text if text is not None else json.dumps(header)).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + body)


def load_outcome(path, limit=PEAK_LIMIT, **kw):
    """('ok', model) or (exception type name, message); asserts the allocation bound and
    that nothing but ValueError / TypeError escapes."""
    tracemalloc.start()
    try:
        try:
            model = fastrnn.load(path, **kw)
            result = ("ok", model)
        except (ValueError, TypeError) as e:
            result = ("ValueError" if isinstance(e, ValueError) else "TypeError", str(e))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < limit, f"loading allocated {peak} bytes"
    return result


def bad_file(path, *fragments, limit=PEAK_LIMIT, **kw):
    outcome, message = load_outcome(path, limit, **kw)
    assert outcome == "ValueError", (outcome, message)
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.fixture
def lstm_file(tmp_path):
    path = tmp_path / "lstm.safetensors"
    fastrnn.LSTM(3, 4, num_layers=2, seed=0).save(path)
    # The first load imports code lazily: done here, outside the measured allocations.
    fastrnn.load(path)
    return path


# --- the mutation fuzz --------------------------------------------------------------------------


def test_corpus_seeds_load_and_run():
    names = sorted(n for n in os.listdir(CORPUS) if n.endswith((".safetensors", ".pt")))
    assert len(names) >= 8
    total = sum(os.path.getsize(os.path.join(CORPUS, n)) for n in names)
    assert total < 16 << 10, f"the seed corpus should stay small, it is {total} bytes"
    for name in names:
        if name.endswith(".pt"):
            pytest.importorskip("torch")
        model = fastrnn.load(os.path.join(CORPUS, name))
        I = model.input_size
        x = np.ones((2, I) if type(model).__name__.endswith("Cell") else (3, 2, I), np.float32)
        model(x)


def test_make_corpus_writes_the_same_models(tmp_path):
    """make_corpus.py regenerates the committed seeds (same classes, configurations and
    weights; torch's zip differs only in its random serialization id)."""
    pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    script = os.path.join(CORPUS, "make_corpus.py")
    result = subprocess.run(
        [sys.executable, script, str(tmp_path)],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for name in sorted(os.listdir(tmp_path)):
        a, b = fastrnn.load(tmp_path / name), fastrnn.load(os.path.join(CORPUS, name))
        assert repr(a) == repr(b)
        for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
            assert ka == kb and np.array_equal(va, vb)


def test_mutation_fuzz():
    """FUZZ_CASES mutations (fixed seed) of the seed corpus: each loads and runs, or raises
    ValueError (naming the file) or TypeError; allocation peak per case ≤ 16 MiB. A longer
    campaign: python tests/support/fuzz_load.py --cases 200000 --seed 7."""
    env = dict(os.environ)
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(SUPPORT, "fuzz_load.py"),
            "--cases",
            str(FUZZ_CASES),
            "--seed",
            str(FUZZ_SEED),
        ],
        capture_output=True,
        check=False,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    outcomes = json.loads(result.stdout.splitlines()[0])
    assert sum(outcomes.values()) == FUZZ_CASES
    assert set(outcomes) <= {"ok", "ValueError", "TypeError"}, outcomes
    # The mutators reach both ends: files that still load, and files refused.
    assert outcomes.get("ok", 0) > 50 and outcomes.get("ValueError", 0) > 1000, outcomes


# --- adversarial safetensors files ---------------------------------------------------------------


def test_declared_2_pow_40_elements_allocates_nothing(lstm_file):
    """A consistent header (shape, dtype and byte range agree) declaring a 2^40-element
    tensor: refused from the header alone, with nothing allocated beyond the header."""
    header, body = raw(lstm_file)
    begin = header["weight_ih_l0"]["data_offsets"][0]
    header["weight_ih_l0"]["shape"] = [1 << 20, 1 << 20]
    header["weight_ih_l0"]["data_offsets"] = [begin, begin + 4 * (1 << 40)]
    write(lstm_file, header, body)
    # Measured: 15 KB peak (the header's parse) for a 1.7 KB file declaring 4 TiB.
    bad_file(lstm_file, "outside the", "truncated or corrupted", limit=64 << 10)


@pytest.mark.parametrize(
    ("shape", "fragment"),
    [
        ([-1, 3], "expected at most 8 sizes in [0, 16777216]"),
        ([2**63, 2**63], "expected at most 8 sizes in [0, 16777216]"),
        ([2**64 + 5], "expected at most 8 sizes in [0, 16777216]"),
        ([1.5, 3], "expected at most 8 sizes"),
        (["3", 3], "expected at most 8 sizes"),
        ([True, 3], "expected at most 8 sizes"),
        ([1] * 9, "expected at most 8 sizes"),
        ("12", "expected at most 8 sizes"),
        (None, "expected at most 8 sizes"),
        ([[12], 3], "expected at most 8 sizes"),
        ([1 << 24, 1 << 24], "1125899906842624 bytes"),
    ],
)
def test_bad_shapes(lstm_file, shape, fragment):
    header, body = raw(lstm_file)
    header["weight_ih_l0"]["shape"] = shape
    write(lstm_file, header, body)
    bad_file(lstm_file, fragment)


@pytest.mark.parametrize(
    "offsets",
    [
        [-1, 10],
        [0, -4],
        [2**64, 2**64 + 48],
        [0, 2**63],
        [48, 0],
        [0.0, 48],
        ["0", "48"],
        [0, 48, 96],
        None,
        7,
    ],
)
def test_bad_offsets(lstm_file, offsets):
    header, body = raw(lstm_file)
    header["weight_ih_l0"]["data_offsets"] = offsets
    write(lstm_file, header, body)
    bad_file(lstm_file, "weight_ih_l0")


@pytest.mark.parametrize("dtype", ["I32", "U8", "BOOL", "F8_E4M3", "C64", "f32", "", None, 4])
def test_wrong_dtypes(lstm_file, dtype):
    header, body = raw(lstm_file)
    header["weight_hh_l1"]["dtype"] = dtype
    write(lstm_file, header, body)
    bad_file(lstm_file, "weight_hh_l1", "fastrnn reads F32, F16, F64, BF16")


@pytest.mark.parametrize("key", ["weight_ih_l0", "__metadata__"])
def test_duplicate_keys_in_json(lstm_file, key):
    header, body = raw(lstm_file)
    text = json.dumps(header)[:-1] + f', "{key}": {json.dumps(header[key])}}}'
    write(lstm_file, None, body, text)
    bad_file(lstm_file, f"duplicate keys ['{key}']")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"a":' * 50_000 + "1" + "}" * 50_000, "nested too deeply"),
        ('{"a": ' + "9" * 5000 + "}", "not valid JSON"),
        ('{"a": NaN}', "tensor 'a' must have exactly dtype, shape and data_offsets"),
        ("\udcff", "not valid JSON"),
    ],
    ids=["nested-arrays", "nested-objects", "5000-digits", "NaN", "not-utf8"],
)
def test_hostile_json(tmp_path, text, fragment):
    path = tmp_path / "bad.safetensors"
    raw_text = text.encode("utf-8", "surrogateescape")
    path.write_bytes(struct.pack("<Q", len(raw_text)) + raw_text)
    bad_file(path, fragment)


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        (
            "hidden_size",
            str(2**62),
            "hidden_size must be in [1, 16777216], got 4611686018427387904",
        ),
        ("num_layers", str(10**9), "num_layers must be in [1, 4096], got 1000000000"),
        ("input_size", "9" * 31, "metadata input_size must be a non-negative integer"),
        ("input_size", "16777216", "'weight_ih_l0' has shape (16, 3), expected (16, 16777216)"),
        ("hidden_size", "٣", "metadata hidden_size must be a non-negative integer"),
        ("hidden_size", " 4", "metadata hidden_size must be a non-negative integer"),
        ("bias", "True", "metadata bias must be 'true' or 'false'"),
        ("class", "", "metadata class must be one of"),
    ],
)
def test_absurd_metadata_values(lstm_file, key, value, fragment):
    header, body = raw(lstm_file)
    header["__metadata__"][key] = value
    write(lstm_file, header, body)
    bad_file(lstm_file, fragment)


def test_weight_count_beyond_bound(lstm_file):
    """Every size in range, but 4·H·(I + H) weights beyond 2^32: refused from the metadata."""
    header, body = raw(lstm_file)
    header["__metadata__"].update(input_size="16777216", hidden_size="16777216", num_layers="1")
    write(lstm_file, header, body)
    bad_file(lstm_file, "would have 2251799947902976 weights; fastrnn reads at most 2^32")


@pytest.mark.parametrize("value", [3, None, True, [1], {"a": "b"}])
def test_metadata_values_not_strings(lstm_file, value):
    header, body = raw(lstm_file)
    header["__metadata__"]["hidden_size"] = value
    write(lstm_file, header, body)
    bad_file(lstm_file, "header __metadata__ must map strings to strings")


@pytest.mark.parametrize("value", ["fastrnn", ["a"], 3, None])
def test_metadata_not_an_object(lstm_file, value):
    header, body = raw(lstm_file)
    header["__metadata__"] = value
    write(lstm_file, header, body)
    bad_file(lstm_file, "header __metadata__ must map strings to strings")


def test_nan_and_inf_weights_load_and_propagate_like_torch(tmp_path):
    """NaN / inf weights load (torch loads them too) and propagate like torch's."""
    torch = pytest.importorskip("torch")
    module = torch.nn.GRU(3, 4)
    with torch.no_grad():
        module.weight_hh_l0[2, 1] = float("nan")
        module.bias_ih_l0[5] = float("inf")
    torch.save(module.state_dict(), tmp_path / "nan.pt")
    fastrnn.from_torch(module).save(tmp_path / "nan.safetensors")
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    with torch.no_grad():
        want = [t.numpy() for t in module(torch.from_numpy(x))]
    for name in ("nan.pt", "nan.safetensors"):
        got = fastrnn.load(tmp_path / name)(x)
        for g, w in zip(got, want):
            assert np.array_equal(np.isnan(g), np.isnan(w))
            assert np.allclose(g, w, atol=1e-5, equal_nan=True)


@pytest.mark.parametrize("seed", range(6))
def test_truncations_and_flips_of_every_seed(tmp_path, seed):
    """Every seed truncated at 40 evenly spread points and with 40 random byte flips."""
    names = sorted(n for n in os.listdir(CORPUS) if n.endswith(".safetensors"))
    rng = random.Random(seed)
    for name in names:
        with open(os.path.join(CORPUS, name), "rb") as f:
            data = f.read()
        path = tmp_path / name
        for k in range(40):
            if seed % 2 == 0:
                mutated = data[: len(data) * k // 40]
            else:
                b = bytearray(data)
                b[rng.randrange(len(b))] = rng.randrange(256)
                mutated = bytes(b)
            path.write_bytes(mutated)
            outcome, _ = load_outcome(path)
            assert outcome in ("ok", "ValueError"), (name, k, outcome)


# --- adversarial torch files -------------------------------------------------------------------


def torch_case(tmp_path, obj):
    torch = pytest.importorskip("torch")
    path = tmp_path / "case.pt"
    torch.save(obj, path)
    fastrnn.load(os.path.join(CORPUS, "torch-lstm.pt"))  # warm-up: torch's unpickler imports
    return path


def lstm_sd():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    return dict(torch.nn.LSTM(2, 3).state_dict())


def test_torch_broadcast_view_declaring_2_pow_30_elements(tmp_path):
    """A 1.8 KB torch file whose weights are expanded views (stride 0) of one float each:
    torch.load rebuilds a 2^30-element view without allocating it, and converting it would
    allocate 4 GiB (it did: 8.8 GB peak RSS before the fix). Refused before converting."""
    torch = pytest.importorskip("torch")
    sd = {
        "weight_ih_l0": torch.zeros(1).expand(4 * 2**12, 2**16),
        "weight_hh_l0": torch.zeros(1).expand(4 * 2**12, 2**12),
    }
    path = torch_case(tmp_path, sd)
    assert os.path.getsize(path) < 4096
    bad_file(path, "declare 1140850688 elements but the file holds", "expanded")


def test_torch_small_expanded_bias_loads(tmp_path):
    """A broadcast view that holds no more elements than the file has bytes is fine."""
    torch = pytest.importorskip("torch")
    sd = lstm_sd()
    sd["bias_ih_l0"] = torch.zeros(1).expand(12)
    outcome, model = load_outcome(torch_case(tmp_path, sd))
    assert outcome == "ok" and not model.state_dict()["bias_ih_l0"].any()


@pytest.mark.parametrize(
    ("change", "outcome", "fragment"),
    [
        (
            lambda t, sd: sd.update(weight_ih_l0=sd["weight_ih_l0"].to_sparse()),
            "ValueError",
            "weights must be dense tensors",
        ),
        (
            lambda t, sd: sd.update(weight_ih_l0=sd["weight_ih_l0"].to_sparse_csr()),
            "ValueError",
            "weights must be dense tensors",
        ),
        (
            lambda t, sd: sd.update(weight_ih_l0=sd["weight_ih_l0"].to("meta")),
            "ValueError",
            "weights must be dense tensors with data",
        ),
        (
            lambda t, sd: sd.update(weight_ih_l0=sd["weight_ih_l0"].to(t.complex64)),
            "ValueError",
            "weights must be floating point",
        ),
        (
            lambda t, sd: sd.update(weight_ih_l0=sd["weight_ih_l0"].to(t.int8)),
            "ValueError",
            "weights must be floating point",
        ),
        (
            lambda t, sd: sd.update(weight_ih_l0=sd["weight_ih_l0"][None]),
            "ValueError",
            "must be a matrix",
        ),
        (lambda t, sd: sd.update(weight_hh_l0=t.zeros(0, 0)), "ValueError", "must be a matrix"),
        (
            lambda t, sd: sd.update({"weight_ih_l" + "9" * 5000: t.zeros(12, 2)}),
            "ValueError",
            "unexpected keys",
        ),
        (
            lambda t, sd: sd.update(weight_ih_l999999999=t.zeros(12, 2)),
            "ValueError",
            "num_layers must be in [1, 4096], got 1000000000",
        ),
        (lambda t, sd: sd.update(weight_ih_l0=sd["weight_ih_l0"].to(t.float8_e4m3fn)), "ok", ""),
        (lambda t, sd: sd.update(weight_ih_l0=sd["weight_ih_l0"].t().contiguous().t()), "ok", ""),
    ],
    ids=[
        "sparse",
        "csr",
        "meta",
        "complex",
        "int8",
        "3d",
        "empty",
        "5000-digit-layer",
        "1e9-layers",
        "float8",
        "non-contiguous",
    ],
)
def test_torch_adversarial_tensors(tmp_path, change, outcome, fragment):
    torch = pytest.importorskip("torch")
    sd = lstm_sd()
    change(torch, sd)
    path = torch_case(tmp_path, sd)
    if outcome == "ok":
        got, model = load_outcome(path)
        assert got == "ok", model
        model(np.ones((2, 1, 2), np.float32))
    else:
        bad_file(path, fragment)


@pytest.mark.parametrize("obj", [[1, 2], {1: 2}, {}, {"a": {"b": 1}}, "text", 3.5, None], ids=repr)
def test_torch_files_without_state_dicts(tmp_path, obj):
    bad_file(torch_case(tmp_path, obj), "not a state_dict")


# --- load_state_dict ------------------------------------------------------------------------------

SD_MODELS = [
    lambda: fastrnn.LSTM(3, 5, num_layers=2, proj_size=2, bidirectional=True, seed=0),
    lambda: fastrnn.GRU(3, 5, bias=False, seed=1),
    lambda: fastrnn.RNN(3, 5, nonlinearity="relu", num_layers=2, seed=2),
    lambda: fastrnn.LSTMCell(3, 5, seed=3),
    lambda: fastrnn.GRUCell(3, 5, seed=4),
    lambda: fastrnn.RNNCell(3, 5, bias=False, seed=5),
]


def mutate_state_dict(rng: random.Random, sd: dict):
    """One random corruption of a valid state dict; returns (state_dict, description)."""
    sd = dict(sd)
    key = rng.choice(list(sd))
    a = sd[key]
    kind = rng.randrange(16)
    if kind == 0:
        del sd[key]
    elif kind == 1:
        sd[key + rng.choice(["_reverse", "_l9", "x", ""]) + "!"] = a
    elif kind == 2:
        sd[rng.choice([0, None, 1.5, ("a",), b"weight_ih"])] = a
    elif kind == 3:
        sd[key] = a.astype(rng.choice([np.int32, np.int8, np.uint16, bool, np.complex64, object]))
    elif kind == 4:
        sd[key] = a.astype(rng.choice([np.float16, np.float64, np.longdouble, ">f4", ">f8"]))
    elif kind == 5:
        sd[key] = a.T if a.ndim == 2 else a[None]
    elif kind == 6:
        sd[key] = np.broadcast_to(np.float32(0), rng.choice([(1 << 40,), (1 << 20, 1 << 21)]))
    elif kind == 7:
        sd[key] = np.broadcast_to(np.float64(1), a.shape)  # right shape, read-only view
    elif kind == 8:
        sd[key] = rng.choice([None, "weights", 3.0, a.tolist(), {"a": 1}, [a]])
    elif kind == 9:
        sd[key] = np.full(a.shape, rng.choice([np.nan, np.inf, -np.inf, 1e30, 1e-45]), np.float32)
    elif kind == 10:
        sd[key] = np.zeros((0,) + a.shape[1:], np.float32)
    elif kind == 11:
        big = np.zeros(tuple(2 * d for d in a.shape), np.float32)
        sd[key] = big[tuple(slice(None, None, 2) for _ in a.shape)]  # non-contiguous view
    elif kind == 12:
        sd[key] = np.float32(1.0)  # 0-d
    elif kind == 13:
        sd = {
            k + "_l0" if not k.endswith(("_l0", "_l1", "_reverse")) else k[:-3]: v
            for k, v in sd.items()
        }
    elif kind == 14:
        structured = np.zeros(a.shape, dtype=[("x", np.float32)])
        sd[key] = structured
    else:
        sd = list(sd.items())
    return sd, kind


def test_load_state_dict_fuzz():
    """600 corrupted state dicts over every class: each loads, or raises ValueError /
    TypeError within the allocation bound, and a failed load leaves the model as it was."""
    rng = random.Random(0)
    outcomes = {}
    tracemalloc.start()
    try:
        for k in range(600):
            model = SD_MODELS[k % len(SD_MODELS)]()
            before = model.state_dict()
            sd, kind = mutate_state_dict(rng, before)
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            try:
                model.load_state_dict(sd)
                outcome = "ok"
            except (ValueError, TypeError) as e:
                outcome = "ValueError" if isinstance(e, ValueError) else "TypeError"
                # One try per mutation of a loop: pytest.raises cannot say "ok or refused".
                assert type(model).__name__ in str(e) or "must be" in str(e), str(e)  # noqa: PT017
                for key, value in model.state_dict().items():
                    assert np.array_equal(value, before[key], equal_nan=True), (k, kind)
            peak = tracemalloc.get_traced_memory()[1] - base
            assert peak < PEAK_LIMIT, (k, kind, peak)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            I = model.input_size
            cell = type(model).__name__.endswith("Cell")
            model(np.ones((2, I) if cell else (3, 2, I), np.float32))  # still runs
    finally:
        tracemalloc.stop()
    assert set(outcomes) == {"ok", "ValueError", "TypeError"}, outcomes
