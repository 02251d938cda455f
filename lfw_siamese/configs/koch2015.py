"""Koch, Zemel & Salakhutdinov 2015: conv+max-pool tower, 4,096 sigmoid units, 105x105 input."""

from lfw_siamese.configs import base


def get_config():
  config = base.get_config()
  config.data.crop = 150
  config.data.image_size = 105
  config.model.conv_filters = (64, 128, 128, 256)
  config.model.conv_kernels = (10, 7, 4, 4)
  config.model.conv_strides = (1, 1, 1, 1)
  config.model.max_pool = (True, True, True, False)
  config.model.dropout = 0.0
  config.model.dense_units = 4096
  config.model.init = 'koch2015'
  config.l2_weight = 2e-4
  config.optimizer = 'sgd'
  config.learning_rate = 1e-3
  config.momentum = 0.5
  config.lr_schedule = 'exponential'
  config.lr_decay_per_epoch = 0.99
  config.batch_size = 128
  config.num_epochs = 200
  config.augment.affine = True
  config.keep_freed_memory = False  # With it, batch 128 grew past 23 GB (benchmarks/README.md).
  return config
