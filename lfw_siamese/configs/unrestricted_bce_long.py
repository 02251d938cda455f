"""unrestricted_bce.py trained 4x longer (2x epochs, 2x pairs per epoch): View 1 test 0.758."""

from lfw_siamese.configs import unrestricted_bce


def get_config():
  config = unrestricted_bce.get_config()
  config.data.pairs_per_epoch = 4400
  config.num_epochs = 80
  return config
