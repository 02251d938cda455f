"""A seconds-long config for tests: 32x32 grayscale, two small conv blocks."""

from lfw_siamese.configs import base


def get_config():
  config = base.get_config()
  config.data.crop = 150
  config.data.image_size = 32
  config.model.conv_filters = (8, 8)
  config.model.dense_units = 16
  config.l2_weight = 1e-4
  config.learning_rate = 1e-3
  config.batch_size = 16
  config.num_epochs = 2
  config.log_every_steps = 1
  return config
