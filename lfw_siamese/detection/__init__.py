"""Face detection (MTCNN in Flax) and alignment to the training images' framing."""
