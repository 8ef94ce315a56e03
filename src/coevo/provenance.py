"""What a measurement was made with: the machine, the code's commit, the peak memory.

Every result file of the benchmarks carries these beside its numbers.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path


def peak_rss_mb() -> float:
    """This process's peak resident memory, in MiB.

    VmHWM rather than ru_maxrss: on Linux a child inherits its parent's
    ru_maxrss across fork and exec, so a small job started by a big process
    would report the parent's peak; VmHWM starts afresh with the new program.
    """
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def release_freed_memory() -> None:
    """Hand the memory that earlier steps freed back to the system before the next step starts.

    Why: glibc keeps freed heap pages (a step's tensors, the previous LLM's buffers) mapped for
    reuse, so a round's later steps would start from the earlier steps' high-water mark; on a
    machine that other programs share, that memory is theirs again. No-op where the C library
    has no ``malloc_trim``.
    """
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError, TypeError):
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)


def reset_peak_rss() -> bool:
    """Start this process's peak (VmHWM) afresh, so the next reading is the peak of what runs from
    now on: how a run tells which step needed the memory. Linux only (``clear_refs``); elsewhere the
    peak keeps counting from the start and False is returned."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_gpu_mb() -> float | None:
    """The most GPU memory this process's tensors held since ``reset_peak_gpu``, in MiB; None where no
    CUDA device is in use.

    Why beside the resident memory: on a GPU the step's weights, activations and optimizer state live
    on the card, so the host's peak no longer says which step needs the memory, and a step that
    silently ran on the CPU shows up as 0 here. torch is read only if a step already imported it.
    """
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    return torch.cuda.max_memory_allocated() / 2**20


def reset_peak_gpu() -> None:
    """Start the GPU peak afresh for the next step (``peak_gpu_mb``); no-op without CUDA."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


# What a benchmark writes while it runs (its result tables) and prose: a change there does
# not change what was measured, so it does not make the stamp "-dirty".
_NOT_CODE = (":(exclude)docs", ":(exclude,glob)**/*.md")


def git_commit(root: Path) -> str:
    """``git rev-parse --short HEAD``, plus ``-dirty`` when tracked code has uncommitted changes.

    A bench rewrites ``docs/results`` after every cell, so counting those files
    would stamp every cell after the first as dirty.
    """
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "diff", "--quiet", "HEAD", "--", ".", *_NOT_CODE],
                               capture_output=True).returncode
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def code_version() -> str:
    """What code is running: the commit of the checkout this package is imported from, or, for an
    installed package, its version. A run folder keeps it per step, so a result read back later (or a
    run resumed on newer code) still says what made it."""
    root = Path(__file__).resolve().parents[2]
    if (root / ".git").exists() and (root / "pyproject.toml").is_file():
        commit = git_commit(root)
        if commit != "unknown":
            return commit
    from . import __version__

    return f"coevo {__version__}"


def cpu_multiplies_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU has bfloat16 matrix instructions. On a CPU the LLM computes in bfloat16 only
    where it has them, else in float32, which takes several times as long: the same model name
    can mean very different run times, so the machine line says which."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = set(cpuinfo.split())
    return "avx512_bf16" in flags or "amx_bf16" in flags


def machine() -> str:
    """CPU model (marked when it multiplies bfloat16), cores, RAM, and GPUs when nvidia-smi is there."""
    cpu, cpuinfo = "unknown CPU", ""
    with contextlib.suppress(OSError):
        cpuinfo = Path("/proc/cpuinfo").read_text()
        for line in cpuinfo.splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    if cpu_multiplies_bf16(cpuinfo):
        cpu += " (bfloat16)"
    text = f"{cpu}, {os.cpu_count()} cores"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:"))
        text += f", {kib / 1024**2:.0f} GB RAM"
    if shutil.which("nvidia-smi"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            gpus = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                                  capture_output=True, text=True, timeout=30).stdout.strip().splitlines()
            if gpus:
                text += ", GPU " + "; ".join(g.strip() for g in gpus)
    return text
