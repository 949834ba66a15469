"""fastrnn: fast CPU inference of LSTM, GRU and RNN layers with PyTorch's exact semantics.

import fastrnn
lstm = fastrnn.from_torch(torch_lstm)
out, (h_n, c_n) = lstm(x)          # numpy in, numpy out, torch's shapes and meaning
"""

__version__ = "0.1.0"

from . import io
from ._accelerate import FallbackError, accelerate, restore
from ._batch import BatchPredictor, predict_file
from ._config import ModelConfig
from ._load import from_keras, from_onnx, from_torch, load
from ._modules import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell, build
from ._quantize import quantize
from ._runtime import (
    caches_select_from_env,
    cpu_info,
    get_num_threads,
    select_isa_from_env,
    set_num_threads,
    threads_check_env,
)
from ._stream import Stream
from ._threadpoolctl import threadpoolctl_register
from ._verify import VerifyReport, verify

select_isa_from_env()
caches_select_from_env()
threads_check_env()
threadpoolctl_register()

__all__ = [
    "LSTM",
    "GRU",
    "RNN",
    "LSTMCell",
    "GRUCell",
    "RNNCell",
    "from_torch",
    "from_keras",
    "from_onnx",
    "load",
    "build",
    "quantize",
    "ModelConfig",
    "io",
    "BatchPredictor",
    "accelerate",
    "restore",
    "FallbackError",
    "predict_file",
    "verify",
    "Stream",
    "VerifyReport",
    "set_num_threads",
    "get_num_threads",
    "cpu_info",
    "__version__",
]
