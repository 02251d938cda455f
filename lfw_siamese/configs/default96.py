"""default.py at 96x96 (about 45 minutes on 2 cores): View 1 test 0.902 over 3 seeds, AUC 0.968."""

from lfw_siamese.configs import default


def get_config():
  config = default.get_config()
  # The network, the LBP descriptors and their metric all see the larger crop (RESULTS.md, "Input
  # resolution"): the strongest lever since the metric, over the 30 minutes default.py keeps to.
  config.data.image_size = 96
  return config
