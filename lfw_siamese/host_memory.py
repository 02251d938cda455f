"""Makes the host allocator keep freed memory, so that XLA's CPU buffers are reused.

XLA's CPU runtime allocates each step's activations, gradients and temporaries afresh with
posix_memalign. glibc serves blocks of over 32 MiB with mmap (and XLA's worker threads get arenas
that always fall back to mmap for them) and unmaps them when freed, so every step touches
gigabytes of new pages: on the reference model about 1.8 million page faults per step, a quarter
of its CPU time (benchmarks/README.md). One arena, no mmap and no trimming make freed blocks
reusable. The cost is fragmentation: peak memory can grow well past XLA's own need (koch2015 at
batch 128 grew past 23 GB), so the config decides (`keep_freed_memory`, off in the configs it
would not fit).
"""

import ctypes
import ctypes.util

import ml_collections

# mallopt parameters from glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8


def keep_freed_memory() -> bool:
  """Asks glibc to reuse freed blocks instead of returning them to the system; True if it could.

  Call it before JAX starts (before the first computation): the arena limit only holds for
  threads that have not allocated yet. Process memory then stays at its peak (it is reused,
  never returned). Elsewhere than glibc (macOS, musl) it does nothing and returns False.
  """
  name = ctypes.util.find_library('c')
  try:
    libc = ctypes.CDLL(name)
    mallopt = libc.mallopt
  except (OSError, AttributeError, TypeError):
    return False
  mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
  # A trim threshold of -1 reads as SIZE_MAX: never give the top of the heap back.
  return all(mallopt(param, value) == 1 for param, value in (
      (_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, -1)))


def configure(config: ml_collections.ConfigDict) -> bool:
  """keep_freed_memory() when the config's `keep_freed_memory` is on (call before JAX starts)."""
  return bool(config.keep_freed_memory) and keep_freed_memory()
