"""Unrestricted BCE on identity pairs, 64x64 gray face crops, flips, cosine LR, TTA (session 1-3's
default: View 1 test 0.735)."""

from lfw_siamese.configs import base


def get_config():
  # Chosen by experiments/ablations.py (see RESULTS.md): ~3 minutes on 2 CPU cores.
  config = base.get_config()
  config.data.paradigm = 'unrestricted'  # Fresh same/different pairs from View 1's training people.
  config.data.crop = 120
  config.data.image_size = 64
  # 10% of the training people held out: best epoch and threshold are chosen on their pairs.
  config.data.validation_fraction = 0.1
  config.augment.flip = True
  config.model.conv_filters = (32, 64, 64)
  config.model.conv_kernels = (3, 3, 3)
  config.model.conv_strides = (2, 2, 2)
  config.model.max_pool = (False, False, False)
  config.model.padding = 'SAME'
  config.model.dense_units = 512
  config.model.dropout = 0.2
  config.l2_weight = 1e-4
  config.learning_rate = 1e-3
  config.lr_schedule = 'cosine'
  config.batch_size = 64
  config.num_epochs = 40
  config.tta_flip = True
  return config
