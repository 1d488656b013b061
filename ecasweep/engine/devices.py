"""Devices: parse ``cpu``, ``cuda``, ``cuda:N``, ``mps``, ``auto``; check they exist here.

>>> resolve_device("cpu")
device(type='cpu')
"""

from __future__ import annotations

import logging
import os

import torch

from ..errors import DeviceError

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """The torch device for ``name``; ``auto`` picks CUDA, then MPS, then CPU (with a notice)."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        _notice_cpu_fallback()
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"unknown device {name!r}; expected cpu, cuda, cuda:N, mps or auto") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name!r} asked for, but this machine has no CUDA GPU "
                              "(use --devices cpu, or auto to fall back to the CPU)")
        count = torch.cuda.device_count()
        index = 0 if device.index is None else device.index
        if index >= count:
            raise DeviceError(f"device {name!r} does not exist: this machine has {count} CUDA "
                              f"device(s), cuda:0 to cuda:{count - 1}")
        return torch.device("cuda", index)
    if device.type == "mps":
        if not _mps_available():
            raise DeviceError("device 'mps' asked for, but Apple's MPS backend is not available here")
        return device
    raise DeviceError(f"unsupported device {name!r}; expected cpu, cuda, cuda:N, mps or auto")


_noticed: list[bool] = []


def _notice_cpu_fallback() -> None:
    """Say once per process that ``auto`` found no GPU (a warning, so that the CLI shows it)."""
    if not _noticed:
        _noticed.append(True)
        log.warning("no GPU found: device 'auto' runs on the CPU")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def cpu_count() -> int:
    """Cores this process may use (respects affinity masks and cgroup-limited containers)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def autocast_dtype(device: torch.device, amp: str) -> torch.dtype | None:
    """The autocast dtype for ``amp`` (auto, bf16, fp16, off) on ``device``; None for full precision."""
    if amp == "off":
        return None
    if amp == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    if amp == "fp16" and device.type == "cpu":
        raise DeviceError("amp 'fp16' needs a GPU; use bf16 or off on the CPU")
    return torch.bfloat16 if amp == "bf16" else torch.float16
