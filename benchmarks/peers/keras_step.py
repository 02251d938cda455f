"""The reference model's training step in Keras 3 (TensorFlow backend), timed like epoch_time.py.

  benchmarks/peers/.venv/bin/python benchmarks/peers/keras_step.py [--steps N] [--batch B]

Same model as lfw_siamese/configs/seed.py: twin towers sharing weights, two 3x3 stride-2 VALID convs
of 64 with ReLU, L2 on kernels and dropout 0.5 after each, dense sigmoid, weighted-L1 head; binary
cross-entropy; Adam. Synthetic data. Installed by the optional extra `peers` only.
"""

import os
import sys

os.environ.setdefault('KERAS_BACKEND', 'tensorflow')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(__file__))

import common  # pylint: disable=g-import-not-at-top
import keras
import numpy as np


def build_model(image_size: int, dense_units: int) -> keras.Model:
  """The seed report's siamese network in the Keras functional API."""
  ref = common.REFERENCE
  shape = (image_size, image_size, ref['channels'])
  regularizer = keras.regularizers.L2(ref['l2_weight'])
  encoder = keras.Sequential(name='encoder')
  encoder.add(keras.Input(shape))
  for filters in ref['conv_filters']:
    encoder.add(keras.layers.Conv2D(filters, ref['conv_kernel'], strides=ref['conv_stride'],
                                    activation='relu', kernel_regularizer=regularizer))
    encoder.add(keras.layers.Dropout(ref['dropout']))
  encoder.add(keras.layers.Flatten())
  encoder.add(keras.layers.Dense(dense_units, activation='sigmoid', kernel_regularizer=regularizer))
  left, right = keras.Input(shape), keras.Input(shape)
  distance = keras.layers.Lambda(lambda ab: keras.ops.abs(ab[0] - ab[1]))(
      [encoder(left), encoder(right)])
  same = keras.layers.Dense(1, activation='sigmoid')(distance)
  return keras.Model([left, right], same)


def main():
  args = common.parse_args(__doc__.splitlines()[0])
  jit_compile = os.environ.get('KERAS_JIT_COMPILE', 'auto')
  jit_compile = {'true': True, 'false': False}.get(jit_compile, jit_compile)
  model = build_model(args.image_size, args.dense_units)
  model.compile(optimizer=keras.optimizers.Adam(common.REFERENCE['learning_rate']),
                loss='binary_crossentropy', jit_compile=jit_compile)
  rng = np.random.default_rng(0)
  shape = (args.batch, args.image_size, args.image_size, common.REFERENCE['channels'])
  left = rng.random(shape, dtype=np.float32)
  right = rng.random(shape, dtype=np.float32)
  labels = (np.arange(args.batch) % 2).astype(np.float32)[:, None]
  # train_on_batch returns the loss as a Python float: the step has finished when it returns.
  first_s, step_s, cpu_s = common.time_steps(lambda: model.train_on_batch([left, right], labels),
                                      args.steps, args.warmup)
  common.report('keras', args, first_s, step_s, cpu_s, model.count_params(),
                backend=keras.backend.backend(), keras=keras.__version__,
                jit_compile=str(model.jit_compile))


if __name__ == '__main__':
  main()
