"""default.py for 300 epochs (about 45 minutes on 2 cores): View 1 test 0.902 over 3 seeds, AUC
0.968."""

from lfw_siamese.configs import default


def get_config():
  config = default.get_config()
  config.num_epochs = 300  # The same accuracy as default.py's 200 epochs, and the highest AUC.
  return config
