"""The pure, jitted train step and what it needs: optimiser, learning-rate schedule, train state."""

import functools
import json
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from lfw_siamese import sharding
from lfw_siamese.model import augment
from lfw_siamese.model import losses
from lfw_siamese.model import networks
from lfw_siamese.model import ops

_SUM_NAMES = ('loss', 'accuracy', 'l2', 'steps')
PROXIES = 'cosface_proxies'  # The params entry of config.cosface's per-person proxies (P, D).


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any
  sums: dict[str, jax.Array]  # Running sums of step metrics over the current epoch.


def learning_rate_schedule(config: ml_collections.ConfigDict,
                           steps_per_epoch: int) -> optax.Schedule:
  """The learning rate at each step: constant, cosine to 0 over training, or decayed each epoch."""
  if config.lr_schedule == 'constant':
    return optax.constant_schedule(config.learning_rate)
  if config.lr_schedule == 'cosine':
    return optax.cosine_decay_schedule(config.learning_rate, config.num_epochs * steps_per_epoch)
  return optax.exponential_decay(config.learning_rate, transition_steps=steps_per_epoch,
                                 decay_rate=config.lr_decay_per_epoch, staircase=True)


def make_optimizer(config: ml_collections.ConfigDict,
                   steps_per_epoch: int) -> optax.GradientTransformation:
  """Adam or RMSprop (with Keras' epsilon, as the reference) or SGD with momentum (Koch et al.)."""
  learning_rate = learning_rate_schedule(config, steps_per_epoch)
  if config.optimizer == 'adam':
    return optax.adam(learning_rate, eps=1e-7)
  if config.optimizer == 'rmsprop':
    return optax.rmsprop(learning_rate, decay=0.9, eps=1e-7, eps_in_sqrt=False)
  return optax.sgd(learning_rate, momentum=config.momentum)


def l2_penalty(params: Any) -> jax.Array:
  """Sum of squared encoder kernels (conv and dense), Keras' l2 regulariser without its weight."""
  # The pair head is left out: shrinking its weights would only shrink the logits' scale.
  kernels = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(params['encoder'])
             if getattr(path[-1], 'key', None) == 'kernel']
  # vdot: a matmul, 2.5x faster on CPU than XLA's windowed sum of squares (benchmarks/README.md).
  return sum(jnp.vdot(kernel, kernel) for kernel in kernels)


def network_params(params: Any) -> Any:
  """The model's params: the trained params less the CosFace proxies, which only training uses."""
  return {name: value for name, value in params.items() if name != PROXIES}


def make_train_step(model: networks.SiameseNet, tx: optax.GradientTransformation,
                    config: ml_collections.ConfigDict):
  """A pure step (state, batch, key) -> (state, metrics); step randomness is fold_in(key, step)."""
  loss_name, l2_weight = config.loss, config.l2_weight
  # The metric losses' one hyperparameter: supcon's temperature, the others' margin.
  loss_parameter = config.temperature if loss_name == 'supcon' else config.margin
  augment_config = config.augment
  cosface = config.cosface

  def objective(params, batch, key):
    augment_key, dropout_key = jax.random.split(key)
    images = augment.augment_images(augment_key, networks.unit_range(batch['images']),
                                    augment_config)
    if loss_name == 'bce':
      logits = networks.pair_logits(model, params, images, train=True, dropout_key=dropout_key)
      data_loss = losses.binary_cross_entropy(logits, batch['labels'])
      accuracy = losses.pair_accuracy(logits, batch['labels'])
    else:
      network = network_params(params)
      embeddings = networks.encode(model, network, images, train=True, dropout_key=dropout_key)
      metric_loss = losses.METRIC_LOSSES[loss_name](embeddings, batch['person_ids'],
                                                     loss_parameter)
      if cosface.weight:
        metric_loss += cosface.weight * losses.cosface(
            embeddings, params[PROXIES], batch['person_ids'], cosface.margin, cosface.scale)
      # The head alone learns BCE on every in-batch pair of frozen embeddings: calibrated logits.
      frozen = jax.lax.stop_gradient(embeddings)
      head_logits = networks.score_embeddings(model, network, frozen[:, None], frozen[None, :])
      head_loss, accuracy = losses.in_batch_pair_bce(head_logits, batch['person_ids'])
      data_loss = metric_loss + head_loss
    l2 = l2_weight * l2_penalty(params)
    return data_loss + l2, (data_loss, accuracy, l2)

  def train_step(state: TrainState, batch: dict, key: jax.Array):
    step_key = jax.random.fold_in(key, state.step)
    grads, (data_loss, accuracy, l2) = jax.grad(objective, has_aux=True)(
        state.params, batch, step_key)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {'loss': data_loss, 'accuracy': accuracy, 'l2': l2}
    sums = {name: state.sums[name] + value for name, value in metrics.items()}
    sums['steps'] = state.sums['steps'] + 1
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                         sums=sums), metrics

  return train_step


def zero_sums() -> dict[str, jax.Array]:
  return {name: jnp.zeros((), jnp.float32) for name in _SUM_NAMES}


def _state_around(tx, params) -> TrainState:
  """Step 0 with these params and a fresh optimiser state."""
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                    sums=zero_sums())


def init_params(model, key, image_shape, proxy_shape=None) -> Any:
  """The model's fresh params, and CosFace proxies of proxy_shape (people, embedding size) if
  given."""
  params = networks.init(model, key, image_shape)
  if proxy_shape:
    # Unit-norm rows: Adam moves each coordinate by about the learning rate whatever its scale,
    # so rows of norm sqrt(D) (a plain normal draw) would turn sqrt(D) times slower.
    proxies = jax.random.normal(jax.random.fold_in(key, 1), proxy_shape) / proxy_shape[1] ** 0.5
    params = {**params, PROXIES: proxies}
  return params


def create_state(model, tx, image_shape, key, proxy_shape=None) -> TrainState:
  """Fresh params (from `key`) and optimiser state."""
  return _state_around(tx, init_params(model, key, image_shape, proxy_shape))


def create_state_jitted(model, tx, image_shape, key, out_sharding, proxy_shape=None) -> TrainState:
  """create_state's numbers, from two jitted calls: params, then the rest.

  In one call the optimiser state's buffers would be allocated beside the temporaries of the
  params' random draws (3x the largest kernel): 22 GB at 975M parameters, against 15 GB so.
  """
  params = jax.jit(lambda key: init_params(model, key, image_shape, proxy_shape),
                   out_shardings=out_sharding)(key)
  rest = jax.jit(lambda params: _state_around(tx, params).replace(params=None),
                 out_shardings=out_sharding)(params)
  return rest.replace(params=params)


@functools.lru_cache(maxsize=4)
def compiled_train_step(model, config_json: str, epoch_steps: int, mesh: jax.sharding.Mesh):
  """The optimiser and the jitted, donating step; cached so that repeated runs (folds, tests)
  in one process compile once."""
  config = ml_collections.ConfigDict(json.loads(config_json))
  tx = make_optimizer(config, epoch_steps)
  replicated = sharding.replicated(mesh)
  return tx, jax.jit(make_train_step(model, tx, config), donate_argnums=0,
                     compiler_options=ops.compiler_options(),
                     in_shardings=(replicated, sharding.batch_sharding(mesh), replicated),
                     out_shardings=(replicated, replicated))
