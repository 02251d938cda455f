"""The reference model's training step in PyTorch, timed like epoch_time.py.

  benchmarks/peers/.venv/bin/python benchmarks/peers/torch_step.py [--steps N] [--batch B]
      [--device cpu|cuda] [--compile] [--bf16]

Same model as lfw_siamese/configs/seed.py and peers/keras_step.py: twin towers sharing weights, two
3x3 stride-2 VALID convs of 64 with ReLU and dropout 0.5, dense sigmoid, weighted-L1 head; binary
cross-entropy plus Keras-style L2 (0.01 * sum of squares) on conv and dense kernels; Adam. Synthetic
data, channels-last tensors (oneDNN's fast path on CPU). Installed by the optional extra `peers` only.
On a GPU (the default where one is visible) float32 products may use TF32, as JAX's do by default
there, and cuDNN picks its fastest convolutions; --compile runs the step through torch.compile,
--bf16 under bfloat16 autocast.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import common  # pylint: disable=g-import-not-at-top
import torch
from torch import nn


class Siamese(nn.Module):
  """Shared encoder over both images, then sigmoid(w . |a - b| + b) as a logit."""

  def __init__(self, image_size: int, dense_units: int):
    super().__init__()
    ref = common.REFERENCE
    layers, channels, side = [], ref['channels'], image_size
    for filters in ref['conv_filters']:
      layers += [nn.Conv2d(channels, filters, ref['conv_kernel'], stride=ref['conv_stride']),
                 nn.ReLU(), nn.Dropout(ref['dropout'])]
      channels, side = filters, (side - ref['conv_kernel']) // ref['conv_stride'] + 1
    self.convs = nn.Sequential(*layers)
    self.dense = nn.Linear(channels * side * side, dense_units)
    self.head = nn.Linear(dense_units, 1)

  def encode(self, images: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(self.dense(torch.flatten(self.convs(images), 1)))

  def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    # One pass over both sides: same weights, twice the batch.
    embeddings = self.encode(torch.cat([left, right]))
    a, b = embeddings.chunk(2)
    return self.head(torch.abs(a - b))[:, 0]

  def kernels(self):
    return [m.weight for m in self.modules() if isinstance(m, nn.Conv2d)] + [self.dense.weight]


def add_flags(parser):
  parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
  parser.add_argument('--compile', action='store_true', help='the step through torch.compile')
  parser.add_argument('--bf16', action='store_true', help='the forward pass under bf16 autocast')


def main():
  args = common.parse_args(__doc__.splitlines()[0], add_flags)
  device = torch.device(args.device)
  if device.type == 'cuda':
    torch.set_float32_matmul_precision('high')  # TF32, as JAX's default precision on GPU.
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
  torch.manual_seed(0)
  model = Siamese(args.image_size, args.dense_units).to(device, memory_format=torch.channels_last)
  optimizer = torch.optim.Adam(model.parameters(), lr=common.REFERENCE['learning_rate'])
  shape = (args.batch, common.REFERENCE['channels'], args.image_size, args.image_size)
  left = torch.rand(shape, device=device).contiguous(memory_format=torch.channels_last)
  right = torch.rand(shape, device=device).contiguous(memory_format=torch.channels_last)
  labels = (torch.arange(args.batch, device=device) % 2).float()
  loss_fn = nn.BCEWithLogitsLoss()
  l2_weight = common.REFERENCE['l2_weight']

  def loss_and_update():
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device.type, torch.bfloat16, enabled=args.bf16):
      logits = model(left, right)
    loss = loss_fn(logits.float(), labels)
    loss = loss + l2_weight * sum(torch.sum(w * w) for w in model.kernels())
    loss.backward()
    optimizer.step()
    return loss

  update = torch.compile(loss_and_update) if args.compile else loss_and_update

  def step():
    return update().item()  # Synchronises: the step has finished.

  model.train()
  first_s, step_s, cpu_s = common.time_steps(step, args.steps, args.warmup)
  peak = torch.cuda.max_memory_allocated(device) if device.type == 'cuda' else None
  common.report('torch', args, first_s, step_s, cpu_s, sum(p.numel() for p in model.parameters()),
                torch=torch.__version__, threads=torch.get_num_threads(), device=str(device),
                compiled=args.compile, bf16=args.bf16,
                device_peak_mb=round(peak / 2**20) if peak is not None else None)


if __name__ == '__main__':
  main()
