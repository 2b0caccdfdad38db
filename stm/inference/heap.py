"""Gives the C heap's freed pages back to the operating system between frames.

On Linux with glibc, freed tensors of a few MB to 32 MB stay in the process's heap once glibc's
adaptive mmap threshold has risen past them, and a frame's temporaries of different sizes leave it
fragmented: its resident size grew about 180 MB above what is live between two 480p frames in float32
(docs/results.md, issue 15). `malloc_trim(0)` returns those free pages; the next frame touches them
again at a cost that did not show in the timings. Elsewhere (macOS, musl, Windows) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _malloc_trim():
    """glibc's malloc_trim, or None where the C library has none."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> bool:
    """Returns freed heap pages to the system; True if any were released."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False
