"""host_memory: the glibc allocator setting applies (its effect is measured by the benchmark)."""

import subprocess
import sys

import pytest


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc mallopt is Linux-only')
def test_keep_freed_memory_applies_on_glibc_and_jax_still_runs():
  probe = ('from lfw_siamese import host_memory; ok = host_memory.keep_freed_memory(); '
           'import jax.numpy as jnp; print(ok, float(jnp.sum(jnp.ones((1 << 24,)))))')
  out = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True,
                       check=True).stdout.split()
  assert out == ['True', str(float(1 << 24))]


def test_keep_freed_memory_is_opt_in(monkeypatch):
  from lfw_siamese import host_memory  # pylint: disable=g-import-not-at-top
  monkeypatch.delenv(host_memory.ENV_VAR, raising=False)
  assert host_memory.keep_freed_memory_if_asked() is False
