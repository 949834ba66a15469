"""fastrnn's controller for threadpoolctl: ``threadpool_limits(1)`` caps fastrnn like the BLAS
and OpenMP libraries, and ``threadpool_info()`` lists it.

threadpoolctl finds a library among those the process has loaded by its file name's prefix
(the compiled core is ``_core.<tag>.so``) and keeps it only if it exports the functions below
(plain C, see csrc/bindings/module.cc), then calls them through ctypes. The budget they set is
process-wide, unlike libgomp's per-thread limit (threadpoolctl's README: a limit set from one
thread applies to OpenMP calls made from that thread only): a limit set from any thread caps
every fastrnn call while it lasts.
"""

from __future__ import annotations

import ctypes


def _controller_class(threadpoolctl):
    class FastrnnController(threadpoolctl.LibController):
        user_api = "fastrnn"
        internal_api = "fastrnn"
        filename_prefixes = ("_core",)
        check_symbols = ("fastrnn_get_num_threads", "fastrnn_set_num_threads")

        def get_num_threads(self):
            return self.dynlib.fastrnn_get_num_threads()

        def set_num_threads(self, num_threads):
            self.dynlib.fastrnn_set_num_threads(int(num_threads))

        def get_version(self):
            get = self.dynlib.fastrnn_get_version
            get.restype = ctypes.c_char_p
            return get().decode()

    return FastrnnController


_registered = False


def threadpoolctl_register() -> bool:
    """Registers fastrnn's controller with threadpoolctl when it is installed (an optional
    package: nothing is imported otherwise beyond the check). Returns whether it is registered."""
    global _registered
    if _registered:
        return True
    try:
        import threadpoolctl
    except ImportError:
        return False
    if not hasattr(threadpoolctl, "register"):  # threadpoolctl < 3.5 has no custom controllers
        return False
    threadpoolctl.register(_controller_class(threadpoolctl))
    _registered = True
    return True


__all__ = ["threadpoolctl_register"]
