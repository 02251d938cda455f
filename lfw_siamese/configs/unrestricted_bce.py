"""Unrestricted BCE on identity pairs, 64x64 gray face crops, flips, cosine LR, TTA: View 1 test
0.735 in about 3 minutes on 2 cores (chosen by experiments/ablations.py, RESULTS.md)."""

from lfw_siamese.configs import base


def get_config():
  config = base.get_config()
  base.use_unrestricted_recipe(config)  # Fresh same/different pairs of the training people.
  config.data.crop = 120
  config.data.image_size = 64
  config.batch_size = 64
  config.num_epochs = 40
  return config
