"""Every configuration field, with the reference's values; the other configs override a few."""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """Returns the full set of fields, set to the reference (seed report) model."""
  config = ml_collections.ConfigDict()

  config.data = ml_collections.ConfigDict()
  config.data.lfw_dir = ''  # Empty: the LFW_DIR environment variable, then TFDS's manual dir.
  config.data.tfds_dir = ''  # Empty: TFDS_DATA_DIR, then ~/tensorflow_datasets.
  config.data.cache_dir = ''  # Decoded-image cache; empty: <tfds_dir>/lfw_siamese_cache.
  # A file from `python -m lfw_siamese.data export`: read everything from it, without TFDS.
  config.data.bundle = ''
  config.data.decode_workers = 1  # Threads decoding JPEGs; on 2 shared cores one was fastest.
  config.data.memory_cache_gb = 6.0  # Decoded sets kept in memory, least recently used dropped.
  config.data.variant = 'deepfunneled'  # original | funneled | deepfunneled | lfwa
  config.data.protocol = 'view1'  # view1 | view2 (then data.fold is the held-out fold)
  config.data.fold = 0
  config.data.paradigm = 'restricted'  # restricted (given pairs) | unrestricted (identities)
  config.data.color = 'grayscale'  # grayscale | rgb
  config.data.crop = 0  # Side of a face-centred square crop in source pixels; 0 keeps 250x250.
  config.data.image_size = 250  # Side after crop and resize.
  config.data.validation_fraction = 0.025
  config.data.pairs_per_epoch = 0  # Unrestricted: pairs drawn per epoch; 0 means as many as View 1.
  config.data.images_per_person = 2  # Unrestricted metric losses: images of each person in a batch.
  config.data.singles_per_batch = 0  # ... and images of one-image people in it (negatives only).

  config.augment = ml_collections.ConfigDict()
  config.augment.flip = False  # Random horizontal flips of each image.
  config.augment.affine = False  # Koch et al.'s random affine distortions.

  config.model = ml_collections.ConfigDict()
  config.model.conv_filters = (64, 64)  # One entry per conv block.
  config.model.conv_kernels = (3, 3)
  config.model.conv_strides = (2, 2)
  config.model.max_pool = (False, False)  # 2x2 max-pool after a block (Koch et al.).
  config.model.padding = 'VALID'  # Keras' default.
  config.model.residual = False
  config.model.norm = 'none'  # none | group
  config.model.dropout = 0.5  # After each conv block, as the reference.
  config.model.dense_units = 1024
  config.model.dense_activation = 'sigmoid'  # sigmoid | relu | none
  config.model.head = 'weighted_l1'  # weighted_l1 | l2 | cosine
  config.model.init = 'default'  # default (Keras-like glorot) | koch2015
  config.model.compute_dtype = 'float32'  # float32 | bfloat16 (mixed precision)

  config.loss = 'bce'  # bce | contrastive | triplet | supcon
  config.margin = 1.0  # For the contrastive and triplet losses.
  config.temperature = 0.1  # For the supervised contrastive loss (supcon).
  # A CosFace term (losses.cosface) over the training people, added to a metric loss with this
  # weight; its per-person proxies train with the network and are not part of the saved model.
  config.cosface = ml_collections.ConfigDict()
  config.cosface.weight = 0.0  # 0 leaves it out.
  config.cosface.margin = 0.2
  config.cosface.scale = 16.0
  config.l2_weight = 0.01  # Keras' l2() default, on conv and dense kernels.

  config.optimizer = 'adam'  # adam | rmsprop | sgd
  config.learning_rate = 6e-5
  config.momentum = 0.9  # sgd
  config.lr_schedule = 'constant'  # constant | cosine | exponential
  config.lr_decay_per_epoch = 0.99  # exponential

  config.batch_size = 64
  config.num_epochs = 30
  config.seed = 0
  config.tta_flip = False  # Average scores of the images and their mirror images.
  config.best_epoch_by = 'val_acc'  # val_acc (at probability 0.5, highest) | val_loss (lowest)
  # After training: fuse the CNN's score with classic LBP descriptors' (classic/fusion.py), the
  # descriptors learned from the training people and the fusion on the validation pairs.
  config.lbp_fusion = ml_collections.ConfigDict()
  config.lbp_fusion.enabled = False  # Unrestricted paradigm only (the descriptor needs identities).
  config.lbp_fusion.radii = (1, 2, 3)  # LBP circle radii in pixels of the model's input images.
  # Cells per side whose histograms are concatenated: one descriptor, and one fused score, each
  # (RESULTS.md, "The default recipe": why a 6x6 grid beside the 10x10 one).
  config.lbp_fusion.grids = (10, 6)
  config.lbp_fusion.dims = 800  # PCA dimensions before within-class whitening.
  # A metric learned on the descriptors (classic/lbp_metric.py): an MLP trained by supervised
  # contrastive loss on the training people; its cosine is one more fused score. steps = 0 leaves
  # it out.
  config.lbp_fusion.metric = ml_collections.ConfigDict()
  config.lbp_fusion.metric.steps = 3000
  config.lbp_fusion.metric.width = 1024
  config.lbp_fusion.metric.dims = 256
  config.lbp_fusion.metric.dropout = 0.7
  config.lbp_fusion.metric.learning_rate = 1e-3  # Adam(W), cosine decay to 0 over the steps.
  config.lbp_fusion.metric.temperature = 0.1
  config.lbp_fusion.metric.people_per_batch = 64  # Two images each.
  # glibc reuses freed host memory (host_memory.py): the reference step on CPU in 0.8x the time,
  # at the cost of peak memory. Off where that does not fit (koch2015, seed_dense4096).
  config.keep_freed_memory = True
  config.log_every_steps = 10
  config.checkpoint_every_steps = 0  # Also save the train state mid-epoch; 0: once per epoch.
  return config



def use_unrestricted_recipe(config: ml_collections.ConfigDict) -> None:
  """Sets what the unrestricted recipes share: identities from the training people (10% of them
  held out, among whom validation pairs are drawn), flips and flip-averaged scores, three stride-2
  3x3 conv blocks of 32, 64 and 64 filters with dropout 0.2 and 512 dense units, and Adam at 1e-3
  on a cosine schedule with an l2 weight of 1e-4."""
  config.data.paradigm = 'unrestricted'
  config.data.validation_fraction = 0.1
  config.augment.flip = True
  config.tta_flip = True
  config.model.conv_filters = (32, 64, 64)
  config.model.conv_kernels = (3, 3, 3)
  config.model.conv_strides = (2, 2, 2)
  config.model.max_pool = (False, False, False)
  config.model.padding = 'SAME'
  config.model.dropout = 0.2
  config.model.dense_units = 512
  config.l2_weight = 1e-4
  config.learning_rate = 1e-3
  config.lr_schedule = 'cosine'
