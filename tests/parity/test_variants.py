"""The cell variants of ONNX and Keras (activations, clip, peepholes, input_forget, the
classic GRU, reverse, merge modes) on every ISA, against the independent float64 reference
of the ONNX equations (tests/support/reference_variants.py); and what they change around the
engine: files, pickling, threads, streams, plans and bad options.

Tolerance: the parity suites' 1e-5 · max(1, |expected|) per element."""

import pickle

import numpy as np
import pytest

import fastrnn
from support import reference_variants as rv
from support.common import assert_results

TOL = 1e-5

VARIANTS = [
    ("LSTM", {"peepholes": True}),
    ("LSTM", {"input_forget": True}),
    ("LSTM", {"peepholes": True, "input_forget": True, "clip": 0.7}),
    ("LSTM", {"clip": 0.5, "num_layers": 2}),
    ("LSTM", {"activations": ("HardSigmoid", "Elu", "Softsign")}),
    ("LSTM", {"activations": (("HardSigmoid", 1 / 6, 0.5), ("Affine", 1.0, 0.0), "Relu")}),
    ("LSTM", {"reverse": True, "num_layers": 2}),
    (
        "LSTM",
        {
            "bidirectional": True,
            "activations": ("Sigmoid", "Tanh", "Tanh") + ("HardSigmoid", "Softsign", "Tanh"),
        },
    ),
    ("GRU", {"linear_before_reset": False}),
    ("GRU", {"linear_before_reset": False, "num_layers": 2, "bidirectional": True}),
    ("GRU", {"linear_before_reset": False, "reverse": True, "clip": 1.5}),
    ("GRU", {"linear_before_reset": False, "bias": False}),
    ("GRU", {"activations": ("LeakyRelu", "Softplus"), "clip": 2.0}),
    ("GRU", {"activations": (("ScaledTanh", 0.8, 1.2), ("ThresholdedRelu", 0.1))}),
    ("GRU", {"reverse": True, "num_layers": 3}),
    ("RNN", {"activations": (("ScaledTanh", 0.7, 1.3),), "bidirectional": True}),
    (
        "RNN",
        {"activations": (("Affine", 0.5, 0.1), ("ThresholdedRelu", 0.2)), "bidirectional": True},
    ),
    ("RNN", {"nonlinearity": "relu", "clip": 3.0, "reverse": True}),
]
IDS = [f"{c}-" + "-".join(f"{k}={v}" for k, v in kw.items()) for c, kw in VARIANTS]

# (B, T, H): batch 1 (the few-row path), odd batches through the tall row blocks, one
# step, and a hidden size across 64-unit and 16-unit panel tails.
SHAPES = [(1, 9, 20), (5, 7, 70), (3, 1, 33), (9, 4, 130)]


def make(cls, kw, H, seed=0):
    model = getattr(fastrnn, cls)(6, H, seed=seed, **kw)
    sd = model.state_dict()
    if any(k.startswith("weight_peep") for k in sd):
        rng = np.random.default_rng(seed + 100)
        for k in sd:
            if k.startswith("weight_peep"):
                sd[k] = rng.uniform(-0.5, 0.5, sd[k].shape).astype(np.float32)
        model.load_state_dict(sd)
    return model


def flat(result):
    y, state = result
    return [y, *(state if isinstance(state, tuple) else (state,))]


@pytest.mark.parametrize(("cls", "kw"), VARIANTS, ids=IDS)
def test_variant_matches_the_onnx_equations(cls, kw, isa):
    rng = np.random.default_rng(len(IDS[VARIANTS.index((cls, kw))]))
    for B, T, H in SHAPES:
        model = make(cls, kw, H)
        x = rng.standard_normal((T, B, 6)).astype(np.float32)
        lengths = rng.integers(1, T + 1, B) if B > 1 else None
        D = 2 if model.bidirectional else 1
        shape = (model.num_layers * D, B, H)
        state = rng.standard_normal(shape).astype(np.float32) * 0.5
        if cls == "LSTM":
            state = (state, rng.standard_normal(shape).astype(np.float32) * 0.5)
        got = model(x, state, lengths=lengths)
        want = rv.forward(model.config, model.state_dict(), x, state, lengths)
        assert_results(
            got,
            want,
            TOL,
            names=["output", "h_n", "c_n"],
            label=f"{cls} {kw} B={B} T={T} H={H}",
            suite="variants",
            isa=isa,
        )


@pytest.mark.parametrize(("cls", "kw"), VARIANTS[::3], ids=IDS[::3])
def test_variant_threads_and_batch_rows_give_the_same_bits(cls, kw, threads_restored):
    """1 and 2 threads, and a row alone (batch 1 vs the same row among 5): bit-identical
    per the engine's contract (batches from 4 rows use the tall row block: compared among
    themselves)."""
    model = make(cls, kw, 200)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((20, 6, 6)).astype(np.float32)
    fastrnn.set_num_threads(1)
    one = flat(model(x))
    fastrnn.set_num_threads(2)
    two = flat(model(x, num_threads=2))
    assert all(np.array_equal(a, b) for a, b in zip(one, two))


def test_merge_modes():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 3, 4)).astype(np.float32)
    base = fastrnn.GRU(4, 5, bidirectional=True, seed=1)
    y, _ = base(x)
    fwd, bwd = y[..., :5], y[..., 5:]
    expected = {"sum": fwd + bwd, "mul": fwd * bwd, "ave": (fwd + bwd) * np.float32(0.5)}
    for mode, want in expected.items():
        model = fastrnn.GRU(4, 5, bidirectional=True, merge_mode=mode, seed=1)
        assert np.array_equal(model(x)[0], want), mode
    pair = fastrnn.GRU(4, 5, bidirectional=True, merge_mode="none", seed=1)(x)[0]
    assert np.array_equal(pair[0], fwd) and np.array_equal(pair[1], bwd)
    with pytest.raises(ValueError, match="merge_mode='sum' needs a bidirectional model"):
        fastrnn.GRU(4, 5, merge_mode="sum")
    with pytest.raises(ValueError, match="merge_mode must be one of"):
        fastrnn.GRU(4, 5, bidirectional=True, merge_mode="max")


@pytest.mark.parametrize(("cls", "kw"), VARIANTS[::2], ids=IDS[::2])
def test_variant_file_and_pickle_round_trip(cls, kw, tmp_path):
    model = make(cls, kw, 17)
    x = np.random.default_rng(1).standard_normal((5, 2, 6)).astype(np.float32)
    want = flat(model(x))
    model.save(tmp_path / "m.safetensors")
    for again in (fastrnn.load(tmp_path / "m.safetensors"), pickle.loads(pickle.dumps(model))):
        assert again.config == model.config
        assert all(np.array_equal(a, b) for a, b in zip(want, flat(again(x))))


def test_torch_form_files_stay_version_1(tmp_path):
    """A model torch could make is written in format version 1 (older readers read it);
    a variant in version 2 (older readers refuse it rather than compute a torch cell)."""
    from safetensors import safe_open

    fastrnn.LSTM(3, 4, seed=0).save(tmp_path / "a.safetensors")
    fastrnn.LSTM(3, 4, peepholes=True, seed=0).save(tmp_path / "b.safetensors")
    versions = []
    for name in ("a", "b"):
        with safe_open(str(tmp_path / f"{name}.safetensors"), "np") as f:
            versions.append(f.metadata()["format_version"])
    assert versions == ["1", "2"]


def test_streams_follow_the_variants_and_refuse_reverse():
    model = make("GRU", {"linear_before_reset": False, "num_layers": 2}, 24)
    x = np.random.default_rng(2).standard_normal((7, 1, 6)).astype(np.float32)
    stream = model.stream(batch=1)
    steps = np.stack([stream.step(x_t) for x_t in x])
    assert np.array_equal(steps, model(x)[0])
    with pytest.raises(ValueError, match="a reverse=True model cannot stream"):
        fastrnn.LSTM(3, 4, reverse=True).stream()


def test_plans_of_variants():
    classic = fastrnn.GRU(8, 100, linear_before_reset=False, seed=0)
    p = classic.plan(1, 50)
    assert not any(p["ahead"]) and p["workspace_floats"]["c"] > 0  # z and r ⊙ h buffers
    assert not classic.plan(1, 1)["inline_projection"]
    rev = fastrnn.LSTM(8, 64, num_layers=2, reverse=True, seed=0).plan(1, 100, num_threads=2)
    assert rev["schedule"] == "layer-by-layer"


@pytest.mark.parametrize(
    ("make_it", "error", "message"),
    [
        (
            lambda: fastrnn.LSTM(3, 4, bidirectional=True, reverse=True),
            ValueError,
            "reverse=True needs a unidirectional layer stack",
        ),
        (
            lambda: fastrnn.LSTM(3, 4, proj_size=2, peepholes=True),
            ValueError,
            "peepholes and input_forget cannot be combined with proj_size",
        ),
        (lambda: fastrnn.GRU(3, 4, clip=-1.0), ValueError, "clip must be a finite number > 0"),
        (lambda: fastrnn.GRU(3, 4, clip="big"), TypeError, "clip must be a number or None"),
        (
            lambda: fastrnn.GRU(3, 4, activations=("Sigmoid",)),
            ValueError,
            "activations must hold 2 entries",
        ),
        (
            lambda: fastrnn.GRU(3, 4, activations=("Sigmoid", "Swish")),
            ValueError,
            "activation must be one of",
        ),
        (
            lambda: fastrnn.RNN(3, 4, activations="Tanh"),
            TypeError,
            "activations must be a sequence",
        ),
        (
            lambda: fastrnn.LSTM(3, 4, activations=(("Elu", "x"), "Tanh", "Tanh")),
            ValueError,
            "parameters must be finite numbers",
        ),
    ],
)
def test_bad_variant_options(make_it, error, message):
    with pytest.raises(error, match=message):
        make_it()


def test_variant_config_is_checked_by_build():
    config = fastrnn.ModelConfig("LSTM", "LSTM", 3, 4, linear_before_reset=False)
    with pytest.raises(ValueError, match="build: linear_before_reset=False is a GRU option"):
        fastrnn.build(config, {})
