"""LFW data: pair and people lists, sources, TFDS builders, preprocessing, samplers, caches."""
