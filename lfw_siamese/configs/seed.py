"""The seed report's final model, faithfully: 250x250 grayscale, batch 64, Adam 6e-5, 30 epochs."""

from lfw_siamese.configs import base


def get_config():
  return base.get_config()
