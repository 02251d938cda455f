"""The seed model with the paper's 4,096-unit dense layer at 250x250 (975M parameters).

The seed report could not fit it ("OOM"); benchmarks/README.md gives its step time and memory.
"""

from lfw_siamese.configs import seed


def get_config():
  config = seed.get_config()
  config.model.dense_units = 4096
  config.keep_freed_memory = False  # Fits in 16.7 GB without; fragmentation would add gigabytes.
  return config
