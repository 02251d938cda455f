"""host_memory: the glibc allocator setting applies (its effect is measured by the benchmark)."""

import subprocess
import sys

import pytest

from conftest import package_env
from lfw_siamese import host_memory
from lfw_siamese.configs import base
from lfw_siamese.configs import koch2015


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc mallopt is Linux-only')
def test_keep_freed_memory_applies_on_glibc_and_jax_still_runs():
  probe = ('from lfw_siamese import host_memory; ok = host_memory.keep_freed_memory(); '
           'import jax.numpy as jnp; print(ok, float(jnp.sum(jnp.ones((1 << 24,)))))')
  out = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True,
                       check=True, env=package_env()).stdout.split()
  assert out == ['True', str(float(1 << 24))]


def test_configure_follows_the_config(monkeypatch):
  calls = []
  monkeypatch.setattr(host_memory, 'keep_freed_memory', lambda: calls.append(1) or True)
  assert host_memory.configure(koch2015.get_config()) is False
  assert not calls
  assert host_memory.configure(base.get_config()) is True
  assert calls == [1]
