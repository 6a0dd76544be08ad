"""Keep freed memory in the process: glibc ``malloc`` settings for fast training on the CPU.

A training step on the CPU allocates and frees many tensors of megabytes to tens of megabytes
(the decoder's finest level alone: 32 faces x 9,409 vertices x 16 channels is 19 MB, several
times per layer, forward and backward). By default glibc's ``malloc`` hands the free space at
the top of its heap back to the kernel once it exceeds a small threshold, and serves the
largest blocks with ``mmap``; the next tensor of that size then faults its pages in again, and
the kernel zero-fills every one of them: about 150,000 page faults per step of the ``cpu``
preset (``python benchmarks/allocator.py``).

:func:`keep_freed_memory` raises the two thresholds (``M_MMAP_THRESHOLD`` to glibc's maximum
of 32 MiB, ``M_TRIM_THRESHOLD`` to 1 GiB), so such blocks come from the heap and go back to it,
and their pages stay mapped for the next step: the same arithmetic, 941 page faults per
step instead of 149,497, and steps 1.11 times as fast on the project's 2-core machine
(``python benchmarks/allocator.py``, both ways side by side). The cost is
memory the process keeps after its peak instead of returning it. ``facegcn train`` calls it;
the settings apply to the whole process and to the data-loader workers it forks.

Nothing changes where the C library is not glibc (macOS, Windows, musl) or where the user set
``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` (their choice stands). See
:doc:`chapter 5 </chapters/05_training>`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from dataclasses import dataclass

log = logging.getLogger(__name__)

#: ``mallopt`` parameter numbers (glibc's ``malloc.h``).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: The environment variables through which glibc users set the same thresholds themselves.
MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
#: glibc's largest ``M_MMAP_THRESHOLD`` on 64-bit systems (``4 * 1024 * 1024 * sizeof(long)``).
GLIBC_MAX_MMAP_THRESHOLD = 32 * 2**20


class AllocatorConfigError(ValueError):
    """A threshold that ``mallopt`` cannot take; the message says which and why."""


@dataclass(frozen=True)
class MallocConfig:
    """The two ``malloc`` thresholds :func:`keep_freed_memory` sets.

    Attributes:
        mmap_threshold_bytes: blocks at least this large are served by ``mmap`` and unmapped
            when freed (at most :data:`GLIBC_MAX_MMAP_THRESHOLD`).
        trim_threshold_bytes: free space at the top of the heap beyond this is returned to
            the kernel (``mallopt`` takes a C ``int``: below 2 GiB).
    """

    mmap_threshold_bytes: int = GLIBC_MAX_MMAP_THRESHOLD
    trim_threshold_bytes: int = 2**30

    def __post_init__(self) -> None:
        if not 0 < self.mmap_threshold_bytes <= GLIBC_MAX_MMAP_THRESHOLD:
            raise AllocatorConfigError(
                f"mmap_threshold_bytes must be in (0, {GLIBC_MAX_MMAP_THRESHOLD}] (glibc's "
                f"maximum), got {self.mmap_threshold_bytes}")
        if not 0 < self.trim_threshold_bytes < 2**31:
            raise AllocatorConfigError(
                f"trim_threshold_bytes must be in (0, 2**31) (mallopt takes a C int), got "
                f"{self.trim_threshold_bytes}")


def _glibc() -> ctypes.CDLL | None:
    """The process's C library when it is glibc (it has ``mallopt`` and ``gnu_get_libc_version``)."""
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    if not (hasattr(libc, "mallopt") and hasattr(libc, "gnu_get_libc_version")):
        return None
    return libc


def keep_freed_memory(cfg: MallocConfig | None = None) -> bool:
    """Set glibc's ``malloc`` thresholds so that large freed blocks stay mapped for reuse.

    Args:
        cfg: the thresholds (default :class:`MallocConfig`).

    Returns:
        Whether the settings were applied: ``False`` off glibc, when the user set one of
        :data:`MALLOC_ENV`, or when ``mallopt`` refused a value (logged).
    """
    c = cfg or MallocConfig()
    user = [name for name in MALLOC_ENV if name in os.environ]
    if user:
        log.info("malloc thresholds left as set by %s", " and ".join(user))
        return False
    libc = _glibc()
    if libc is None:
        log.debug("not glibc: malloc thresholds unchanged")
        return False
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = bool(mallopt(M_MMAP_THRESHOLD, c.mmap_threshold_bytes) == 1
              and mallopt(M_TRIM_THRESHOLD, c.trim_threshold_bytes) == 1)
    if ok:
        log.info("malloc: blocks below %d MiB come from the heap, which keeps up to %d MiB "
                 "free (facegcn_lib.train.allocator)", c.mmap_threshold_bytes >> 20,
                 c.trim_threshold_bytes >> 20)
    else:
        log.warning("mallopt refused the malloc thresholds %s; training runs with the defaults", c)
    return ok
