"""Siamese convolutional networks for face verification on LFW, in JAX/Flax."""

__version__ = "0.1.0"
