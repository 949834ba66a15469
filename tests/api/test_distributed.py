"""The Ray Data and Dask recipes of docs/distributed.md, run on one machine (2 CPUs, 2
workers of 1 thread) over a dataset of many batches, checked bit for bit against one local
model call. Each test skips only when its engine is not installed."""

from __future__ import annotations

import os

import numpy as np
import pytest

import fastrnn
from fastrnn import _batch
from fastrnn._batch import BatchPredictor

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastrnn.__file__)))
N, T, I = 300, 12, 5  # 300 sequences, batches of 64: five batches, the last of 44 rows


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("distributed") / "encoder.safetensors"
    fastrnn.LSTM(I, 16, num_layers=2, bidirectional=True, seed=7).save(str(path))
    return str(path)


@pytest.fixture(scope="module")
def dataset():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((N, T, I), dtype=np.float32)
    lengths = rng.integers(1, T + 1, N)
    return x, lengths


def local(model_path, x, lengths):
    """One local call over every row (the model's own layout, time-major)."""
    model = fastrnn.load(model_path)
    y, (h, c) = model(x.transpose(1, 0, 2), lengths=lengths)
    return y.transpose(1, 0, 2), h.transpose(1, 0, 2), c.transpose(1, 0, 2)


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray of 2 CPUs for this module, shut down even if a test fails."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    old = os.environ.get("PYTHONPATH")
    # Workers are new processes: they must find this fastrnn (installed or from a checkout).
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_ROOT, old) if p)
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        yield ray
    finally:
        ray.shutdown()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def test_ray_data_recipe_matches_one_local_call(ray_local, model_path, dataset):
    ray = ray_local
    x, lengths = dataset
    y, h, c = local(model_path, x, lengths)

    class Probe(BatchPredictor):  # the recipe's predictor, reporting where it ran
        def __call__(self, batch):
            out = super().__call__(batch)
            out["threads"] = np.full(len(out["id"]), self.threads)
            out["pid"] = np.full(len(out["id"]), os.getpid())
            return out

    items = [{"id": i, "x": x[i], "lengths": lengths[i]} for i in range(N)]
    ds = ray.data.from_items(items).map_batches(
        Probe,
        fn_constructor_args=(model_path,),
        batch_size=64,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=2),
        num_cpus=1,
    )
    rows = sorted(ds.take_all(), key=lambda r: r["id"])
    assert [r["id"] for r in rows] == list(range(N))
    assert np.array_equal(np.stack([r["y"] for r in rows]), y)
    assert np.array_equal(np.stack([r["h_n"] for r in rows]), h)
    assert np.array_equal(np.stack([r["c_n"] for r in rows]), c)
    assert {int(r["threads"]) for r in rows} == {1}  # num_cpus=1 -> OMP_NUM_THREADS=1
    assert os.getpid() not in {int(r["pid"]) for r in rows}


def test_ray_data_variable_length_rows(ray_local, model_path, dataset):
    ray = ray_local
    x, lengths = dataset
    y, h, _ = local(model_path, x, lengths)
    items = [{"id": i, "x": x[i, : lengths[i]]} for i in range(N)]  # a ragged column
    ds = ray.data.from_items(items).map_batches(
        BatchPredictor,
        fn_constructor_args=(model_path,),
        batch_size=64,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=2),
        num_cpus=1,
    )
    rows = sorted(ds.take_all(), key=lambda r: r["id"])
    assert len(rows) == N
    for i, r in enumerate(rows):
        assert np.array_equal(r["y"], y[i, : lengths[i]]), i
        assert np.array_equal(r["h_n"], h[i]), i


def test_dask_recipe_matches_one_local_call(model_path, dataset):
    pytest.importorskip("dask")
    distributed = pytest.importorskip("distributed")
    x, lengths = dataset
    y, h, c = local(model_path, x, lengths)
    batches = [{"x": x[s : s + 64], "lengths": lengths[s : s + 64]} for s in range(0, N, 64)]
    predict = BatchPredictor(model_path)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        outs = client.gather(client.map(predict, batches))
        loads = client.run(_batch.load_count)
        threads = client.run(fastrnn.get_num_threads)
    assert np.array_equal(np.concatenate([o["y"] for o in outs]), y)
    assert np.array_equal(np.concatenate([o["h_n"] for o in outs]), h)
    assert np.array_equal(np.concatenate([o["c_n"] for o in outs]), c)
    assert set(loads.values()) <= {0, 1} and sum(loads.values()) >= 1  # once per worker
    assert set(threads.values()) == {1}  # the nanny's OMP_NUM_THREADS=1
