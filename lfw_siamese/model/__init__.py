"""The siamese network in Flax: encoder and heads, losses, augmentation, and CPU kernels."""
