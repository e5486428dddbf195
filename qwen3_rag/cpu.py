"""The CPU's speed-relevant instructions, and the fast setting they call for.

Which reduced precision is fast on a CPU depends on its instructions, not on the library:

* **AVX-512 BF16 / AMX-BF16** (AMD Zen 4+, Intel Sapphire Rapids+): PyTorch's bfloat16
  matmuls run on them, 2.6x float32 (measured: ``benchmarks/RESULTS.md``).
* **AVX-512 VNNI / AVX-VNNI / AMX-INT8**: PyTorch's int8 matmuls (``quantize="int8"``)
  and ONNX Runtime's run on the int8 dot-product instructions.
* **AVX2 only** (many laptops and cloud VMs): PyTorch's bfloat16 and int8 matmuls are
  30-80x *slower* than float32; ONNX Runtime's int8 kernels (AVX2 ``vpmaddubsw``) are not.
* **ARM**: the dot-product (``asimddp``) and ``i8mm`` instructions serve ONNX Runtime's int8
  kernels; bfloat16 (``bf16``) PyTorch's.

:func:`cpu_features` reads them (``/proc/cpuinfo`` on Linux; PyTorch's own probes elsewhere)
and :func:`choose_fast` turns them into the engine and precision ``precision="fast"`` runs,
with the reason it logs.

Example:
    >>> from qwen3_rag.cpu import CpuFeatures, choose_fast
    >>> avx2_only = CpuFeatures("x86_64", frozenset({"avx2", "fma"}))
    >>> choice = choose_fast("cpu", avx2_only, onnx_available=True)
    >>> choice.engine, choice.quantize
    ('onnx', 'int8')
    >>> choose_fast("cpu", avx2_only, onnx_available=False).engine
    'torch'
"""

from __future__ import annotations

import functools
import importlib.util
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = [
    "CPU_PATHS",
    "SPEED_FLAGS",
    "CpuFeatures",
    "FastChoice",
    "choose_fast",
    "cpu_features",
    "onnx_ready",
]

#: The instructions a CPU speed figure depends on, in the order they are shown.
SPEED_FLAGS = (
    "avx2",
    "avx512f",
    "avx_vnni",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "asimddp",
    "i8mm",
    "bf16",
)


#: The flags PyTorch's CPU int8 kernels need to beat float32.
_TORCH_INT8 = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


@dataclass(frozen=True)
class CpuFeatures:
    """The instruction-set flags of this machine's CPU.

    Attributes:
        arch: ``platform.machine()``, e.g. ``"x86_64"`` or ``"aarch64"``.
        flags: Every flag the CPU reports (``/proc/cpuinfo``'s ``flags`` or ``Features``).
    """

    arch: str
    flags: frozenset[str]

    @property
    def bf16_matmul(self) -> bool:
        """Whether bfloat16 matmuls run on native instructions (AVX-512 BF16, AMX, ARM BF16)."""
        return bool(self.flags & {"avx512_bf16", "amx_bf16", "bf16"})

    @property
    def int8_dot(self) -> bool:
        """Whether the CPU has int8 dot-product instructions (VNNI, AMX-INT8, ARM dotprod)."""
        return bool(self.flags & {"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"})

    def summary(self) -> str:
        """The speed-relevant flags, e.g. ``"x86_64: avx2 avx512_vnni avx512_bf16"``.

        Example:
            >>> CpuFeatures("x86_64", frozenset({"avx2", "sse2"})).summary()
            'x86_64: avx2'
        """
        shown = " ".join(f for f in SPEED_FLAGS if f in self.flags)
        return f"{self.arch}: {shown or 'none of ' + '/'.join(SPEED_FLAGS)}"


@functools.cache
def cpu_features() -> CpuFeatures:
    """This machine's CPU flags (read once per process).

    On Linux they come from ``/proc/cpuinfo``; elsewhere from PyTorch's own probes (VNNI,
    AMX, AVX-512 BF16), which see fewer instructions.
    """
    arch = platform.machine() or "unknown"
    try:
        line = next(
            line
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith(("flags", "Features"))
        )
        return CpuFeatures(arch, frozenset(line.split(":", 1)[1].split()))
    except (OSError, StopIteration):
        pass
    probes = {
        "avx512_vnni": "_is_vnni_supported",
        "amx_tile": "_is_amx_tile_supported",
        "avx512_bf16": "_is_avx512_bf16_supported",
    }
    found = {
        flag for flag, name in probes.items() if bool(getattr(torch.cpu, name, lambda: False)())
    }
    if "amx_tile" in found:
        found |= {"amx_int8", "amx_bf16"}
    if torch.backends.cpu.get_cpu_capability().startswith("AVX"):
        found.add("avx2")
    return CpuFeatures(arch, frozenset(found))


def onnx_ready() -> bool:
    """Whether the ONNX engine's packages are installed (``pip install "qwen3-rag[onnx]"``)."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))


#: The named CPU paths (what ``qwen3-rag doctor --measure`` and ``qwen3-rag eval
#: --precision`` take): the model-class settings each one means.
CPU_PATHS: dict[str, dict[str, str]] = {
    "exact": {"precision": "exact"},
    "fast": {"precision": "fast"},
    "bfloat16": {"dtype": "bfloat16"},
    "int8": {"quantize": "int8"},
    "onnx": {"engine": "onnx"},
    "onnx-int8": {"engine": "onnx", "quantize": "int8"},
}


@dataclass(frozen=True)
class FastChoice:
    """What ``precision="fast"`` runs on one machine, and why.

    Attributes:
        engine: ``"torch"`` or ``"onnx"``.
        dtype: The torch compute dtype (``None``: the device's default).
        quantize: ``"int8"`` or ``None``.
        reason: One sentence, logged when the model loads.
    """

    engine: str
    dtype: str | None
    quantize: str | None
    reason: str


def choose_fast(
    device_type: str,
    features: CpuFeatures | None = None,
    *,
    onnx_available: bool | None = None,
    torch_int8: bool | None = None,
) -> FastChoice:
    """The fastest path with acceptable fidelity for this device and CPU.

    The order follows the speeds measured in ``benchmarks/RESULTS.md`` (0.6B shapes, tokens
    per second against this package's float32 path, min cosine against it):

    * GPU: bfloat16 (``float16`` on MPS), the device's tensor cores.
    * CPU with AVX-512 BF16 or AMX: PyTorch bfloat16, 2.4-2.6x float32 at cosine 0.9999,
      where ONNX Runtime int8 was no faster and less faithful.
    * CPU with int8 dot products but no bfloat16 (VNNI, ARM dotprod), or AVX2 only: ONNX
      Runtime dynamic int8 when the ``onnx`` extra is installed; else PyTorch int8 where it is
      fast (VNNI, with the ``int8`` extra), else float32 with the reason (install the extra).

    Args:
        device_type: ``"cpu"``, ``"cuda"`` or ``"mps"``.
        features: The CPU's flags; ``None`` reads this machine's.
        onnx_available: Whether the ONNX engine is installed; ``None`` checks.
        torch_int8: Whether PyTorch's int8 matmuls are fast here
            (:func:`qwen3_rag.loading.fast_int8_cpu`); ``None``: where the CPU has VNNI or AMX.

    Returns:
        The :class:`FastChoice`.
    """
    if device_type == "cuda":
        return FastChoice("torch", "bfloat16", None, "CUDA: bfloat16 tensor cores")
    if device_type == "mps":
        return FastChoice("torch", "float16", None, "MPS: float16")
    cpu = features if features is not None else cpu_features()
    onnx = onnx_ready() if onnx_available is None else onnx_available
    flags = cpu.summary()
    if cpu.bf16_matmul and cpu.arch in ("x86_64", "AMD64"):
        return FastChoice(
            "torch", "bfloat16", None, f"bfloat16 matmuls are native on this CPU ({flags})"
        )
    if onnx:
        why = "int8 dot products" if cpu.int8_dot else "AVX2 int8 kernels"
        return FastChoice("onnx", "float32", "int8", f"ONNX Runtime dynamic int8 ({why}; {flags})")
    fast_int8 = torch_int8 if torch_int8 is not None else bool(cpu.flags & _TORCH_INT8)
    if fast_int8 and importlib.util.find_spec("torchao") is not None:
        return FastChoice(
            "torch", "float32", "int8", f"PyTorch int8 on VNNI/AMX ({flags}); needs torchao"
        )
    return FastChoice(
        "torch",
        "float32",
        None,
        f"no reduced precision is fast in PyTorch on this CPU ({flags}); "
        'pip install "qwen3-rag[onnx]" for its int8 engine'
        + (' (or "qwen3-rag[int8]": PyTorch int8 is fast here)' if fast_int8 else ""),
    )
