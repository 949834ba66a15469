"""What machine a result was measured on: CPU name, generation, flags, caches, versions."""

from __future__ import annotations

import os
import platform
import sys

import numpy as np

from .peers import peer_versions

# CPU flags (as /proc/cpuinfo spells them) that tell which kernels a CPU can run.
CPU_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)
# Environment variables that cap an instruction set: fastrnn's, then torch's (oneDNN, MKL, ATen).
ISA_VARIABLES = (
    "FASTRNN_ISA",
    "ONEDNN_MAX_CPU_ISA",
    "MKL_ENABLE_INSTRUCTIONS",
    "ATEN_CPU_CAPABILITY",
)


def _cpuinfo_fields() -> dict:
    """The first processor's fields of /proc/cpuinfo ({} elsewhere)."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor is enough
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_caches() -> dict:
    """{"L1d", "L2", "L3"}: bytes of each data cache level of cpu0 (L1d and L2 per core, L3 as
    one slice shared by several cores), from sysfs; levels sysfs does not list are left out."""
    import glob

    def read(path):
        with open(path) as f:
            return f.read().strip()

    sizes = {}
    for index in sorted(glob.glob("/sys/devices/system/cpu/cpu0/cache/index*")):
        try:
            level, kind, text = (read(os.path.join(index, k)) for k in ("level", "type", "size"))
            scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1], 1)
            size = int(text.rstrip("KMG")) * scale
        except (OSError, ValueError, IndexError):
            continue
        if kind != "Instruction":
            sizes["L1d" if level == "1" else f"L{level}"] = size
    return sizes


def _zen(family: int, model: int) -> str | None:
    """AMD's core generation from the CPUID family and model (AMD's published model ranges)."""
    if family == 26:
        return "Zen 5"
    if family == 25:
        if 0x10 <= model <= 0x1F or 0x60 <= model <= 0x7F or 0xA0 <= model <= 0xAF:
            return "Zen 4"  # Genoa, Raphael, Phoenix, Bergamo
        if model <= 0x0F or 0x20 <= model <= 0x5F:
            return "Zen 3"  # Milan, Vermeer, Rembrandt, Cezanne
    if family == 23:
        return "Zen 2" if model >= 0x30 else "Zen"
    return None


# Intel server cores by CPUID model (family 6). Model 85 is Skylake-SP, Cascade Lake or Cooper
# Lake depending on the stepping, so it is left out.
_INTEL_CORES = {
    106: "Ice Lake-SP",
    108: "Ice Lake-SP",
    143: "Sapphire Rapids",
    207: "Emerald Rapids",
    173: "Granite Rapids",
    174: "Granite Rapids",
    175: "Sierra Forest",
}


def cpu_generation(vendor: str, family: int | None, model: int | None) -> str | None:
    if family is None or model is None:
        return None
    if vendor == "AuthenticAMD":
        return _zen(family, model)
    if vendor == "GenuineIntel" and family == 6:
        return _INTEL_CORES.get(model)
    return None


def cpu_slug(name: str, generation: str | None, family=None, model=None) -> str:
    """A file name for a CPU: its model name without trademarks, clock and core count, then its
    core generation when known ("amd-epyc-zen4"); a name without a model number and no known
    generation gets the CPUID family and model ("intel-xeon-family6-model167")."""
    import re

    text = re.sub(r"\((R|TM|tm|r)\)", " ", name)
    text = re.sub(r"@.*$", " ", text)  # clock speed
    text = re.sub(r"\b\d+-Core\b|\bCPU\b|\bProcessor\b", " ", text, flags=re.IGNORECASE)
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown-cpu"
    if generation:
        tag = re.sub(r"[^a-z0-9]+", "-", generation.lower().replace("zen ", "zen")).strip("-")
        if tag not in slug:
            slug += f"-{tag}"
    elif not re.search(r"\d", slug) and family is not None and model is not None:
        slug += f"-family{family}-model{model}"
    return slug


def machine_info() -> dict:
    """The CPU (model, CPUID family and model, core generation, the flags in CPU_FLAGS, cache
    sizes, a file-name slug), fastrnn's view of it, the instruction-set caps in the environment,
    and the versions of Python, numpy and every peer (with torch's ATen ISA once imported)."""
    from .._runtime import cpu_info

    fields = _cpuinfo_fields()
    name = fields.get("model name") or platform.processor() or platform.machine()
    vendor = fields.get("vendor_id", "")
    try:
        family, model_number = int(fields["cpu family"]), int(fields["model"])
    except (KeyError, ValueError):
        family = model_number = None
    model = name
    if family is not None:  # a VM may hide the marketing name
        model += f" (family {family}, model {model_number})"
    generation = cpu_generation(vendor, family, model_number)
    flags = set(fields.get("flags", "").split())
    info = {
        "cpu": model,
        "cpu_name": name,
        "cpu_vendor": vendor,
        "cpu_family": family,
        "cpu_model": model_number,
        "cpu_generation": generation,
        "cpu_flags": {f: f in flags for f in CPU_FLAGS} if flags else {},
        "caches": cpu_caches(),
        "slug": cpu_slug(name, generation, family, model_number),
        "logical_cpus": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "fastrnn": cpu_info(),
        "isa_environment": {k: os.environ[k] for k in ISA_VARIABLES if k in os.environ},
        "peers": peer_versions(),
    }
    if "torch" in sys.modules:
        info["torch_cpu_capability"] = sys.modules["torch"].backends.cpu.get_cpu_capability()
    return info
