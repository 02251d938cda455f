"""A classic face descriptor: uniform LBP histograms, PCA and within-class whitening, cosine scores.

Square-root histograms of uniform local binary patterns (8 neighbours on circles of a few radii) in
a grid of cells, averaged with the mirror image's; PCA, then within-class covariance normalisation
(WCCN) learned from training people, so that the cosine of two descriptors compares faces. It errs
on other pairs than the CNN does, and fusion.py combines the two scores.
"""

import dataclasses

import numpy as np
import tqdm

NEIGHBOURS = 8


def _uniform_table() -> np.ndarray:
  """Maps each 8-bit pattern to its uniform-pattern bin (58 bins), the rest to one more bin."""
  table = np.full(2 ** NEIGHBOURS, -1, np.int64)
  next_bin = 0
  for code in range(2 ** NEIGHBOURS):
    bits = [(code >> i) & 1 for i in range(NEIGHBOURS)]
    if sum(bits[i] != bits[(i + 1) % NEIGHBOURS] for i in range(NEIGHBOURS)) <= 2:
      table[code] = next_bin
      next_bin += 1
  table[table < 0] = next_bin
  return table


UNIFORM_TABLE = _uniform_table()
BINS = int(UNIFORM_TABLE.max()) + 1  # 59


def pattern_codes(images: np.ndarray, radius: int) -> np.ndarray:
  """Uniform-LBP bins (N, H - 2r, W - 2r) of float (N, H, W) images, neighbours interpolated."""
  height, width = images.shape[1:]
  centre = images[:, radius:height - radius, radius:width - radius]
  codes = np.zeros(centre.shape, np.int64)
  for k in range(NEIGHBOURS):
    angle = 2 * np.pi * k / NEIGHBOURS
    # Rounded so that exact grid points (sin and cos of 0, 90, ...) are not a hair off the grid.
    dy, dx = np.round(-radius * np.sin(angle), 9), np.round(radius * np.cos(angle), 9)
    y0, x0 = int(np.floor(dy)), int(np.floor(dx))
    fy, fx = dy - y0, dx - x0

    def shifted(oy, ox):
      top, left = radius + y0 + oy, radius + x0 + ox
      return images[:, top:top + centre.shape[1], left:left + centre.shape[2]]

    neighbour = shifted(0, 0) * ((1 - fy) * (1 - fx))
    for (oy, ox), weight in (((0, 1), (1 - fy) * fx), ((1, 0), fy * (1 - fx)), ((1, 1), fy * fx)):
      if weight > 0:
        neighbour = neighbour + shifted(oy, ox) * weight
    codes |= (neighbour >= centre - 1e-6).astype(np.int64) << k
  return UNIFORM_TABLE[codes]


def histograms(images: np.ndarray, *, radii, grids, chunk: int = 512) -> list[np.ndarray]:
  """float32 (N, len(radii) * grid^2 * 59) square-root LBP histograms of (N, H, W, C) images, one
  array per grid (the patterns are computed once for all grids).

  Images are uint8, or float in [0, 1]; both give the same histograms.
  """
  images = np.asarray(images)
  gray = images.astype(np.float32) / 255 if images.dtype == np.uint8 else images.astype(np.float32)
  gray = gray.mean(axis=-1)
  parts = [[] for _ in grids]  # parts[g][r]: grid g's histograms for radius r.
  for radius in radii:
    height, width = gray.shape[1] - 2 * radius, gray.shape[2] - 2 * radius  # Codes' shape.
    cell_maps = []  # Each pixel's cell, for each grid.
    for grid in grids:
      cell_y = np.minimum(np.arange(height) * grid // height, grid - 1)
      cell_x = np.minimum(np.arange(width) * grid // width, grid - 1)
      cell_maps.append(cell_y[:, None] * grid + cell_x[None, :])
    rows = [[] for _ in grids]
    starts = range(0, gray.shape[0], chunk)
    for start in tqdm.tqdm(starts, desc=f'LBP histograms, radius {radius}', unit='chunk',
                           leave=False, disable=True if len(starts) < 4 else None):
      codes = pattern_codes(gray[start:start + chunk], radius)
      count = codes.shape[0]
      for g, (grid, cells) in enumerate(zip(grids, cell_maps)):
        index = (np.arange(count)[:, None, None] * grid * grid + cells) * BINS + codes
        counts = np.bincount(index.ravel(), minlength=count * grid * grid * BINS)
        rows[g].append(np.sqrt(counts.reshape(count, -1) / (height * width)).astype(np.float32))
    for g in range(len(grids)):
      parts[g].append(np.concatenate(rows[g]))
  return [np.concatenate(part, axis=1) for part in parts]


def mirrored_histograms(images: np.ndarray, *, radii, grids) -> list[np.ndarray]:
  """The mean of `histograms` of the images and of their mirror images: a mirror-symmetric face."""
  images = np.asarray(images)
  plain = histograms(images, radii=radii, grids=grids)
  mirrored = histograms(images[:, :, ::-1], radii=radii, grids=grids)
  return [(a + b) / 2 for a, b in zip(plain, mirrored)]


def principal_axes(centred: np.ndarray, dims: int, *, seed: int = 0) -> np.ndarray:
  """(D, dims) leading principal axes of centred (N, D) rows, by a randomised SVD."""
  rng = np.random.default_rng(seed)
  basis = centred.T @ (centred @ rng.standard_normal((centred.shape[1], dims + 32)))
  for _ in range(2):  # Power iterations sharpen the leading subspace.
    basis, _ = np.linalg.qr(basis)
    basis = centred.T @ (centred @ basis)
  basis, _ = np.linalg.qr(basis)
  _, _, vt = np.linalg.svd(centred @ basis, full_matrices=False)
  return (basis @ vt.T)[:, :dims]


@dataclasses.dataclass(frozen=True)
class LbpEmbedder:
  """LBP histograms -> PCA -> WCCN; `embed` gives unit vectors whose dot products are the scores."""
  radii: tuple[int, ...]
  grid: int
  mean: np.ndarray  # (D,)
  projection: np.ndarray  # (D, dims)

  def embed(self, images: np.ndarray) -> np.ndarray:
    """float32 (N, dims) unit vectors of (N, H, W, C) images (uint8, or float in [0, 1])."""
    return self.project(mirrored_histograms(images, radii=self.radii, grids=(self.grid,))[0])

  def project(self, features: np.ndarray) -> np.ndarray:
    """float32 (N, dims) unit vectors of this descriptor's `mirrored_histograms`."""
    projected = (features - self.mean) @ self.projection
    return projected / np.maximum(np.linalg.norm(projected, axis=1, keepdims=True), 1e-12)

  def arrays(self) -> dict[str, np.ndarray]:
    """Everything that defines it, as arrays for np.savez."""
    return {'lbp_radii': np.asarray(self.radii), 'lbp_grid': np.asarray(self.grid),
            'lbp_mean': self.mean, 'lbp_projection': self.projection}

  @classmethod
  def from_arrays(cls, arrays) -> 'LbpEmbedder':
    return cls(tuple(int(r) for r in arrays['lbp_radii']), int(arrays['lbp_grid']),
               np.asarray(arrays['lbp_mean']), np.asarray(arrays['lbp_projection']))


def fit(images: np.ndarray, person_ids: np.ndarray, *, radii, grids, dims: int,
        ridge: float = 1e-6) -> tuple[LbpEmbedder, ...]:
  """Learns each grid's PCA and within-class whitening from training people's images."""
  return fit_features(mirrored_histograms(images, radii=radii, grids=grids), person_ids,
                      radii=radii, grids=grids, dims=dims, ridge=ridge)


def fit_features(features: list[np.ndarray], person_ids: np.ndarray, *, radii, grids, dims: int,
                 ridge: float = 1e-6) -> tuple[LbpEmbedder, ...]:
  """`fit` from the images' `mirrored_histograms` (one array per grid)."""
  _, counts = np.unique(np.asarray(person_ids), return_counts=True)
  if (counts >= 2).sum() < 2:
    raise ValueError(f'LBP whitening needs two or more people with two or more images each; '
                     f'got {(counts >= 2).sum()}')
  return tuple(LbpEmbedder(tuple(int(r) for r in radii), int(grid),
                           *whitening(grid_features, person_ids, dims, ridge))
               for grid, grid_features in zip(grids, features))


def whitening(features: np.ndarray, person_ids: np.ndarray, dims: int,
              ridge: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
  """float32 (mean (D,), projection (D, dims)): PCA of (N, D) features, then whitening of the
  within-person scatter (people with one image count towards the PCA only)."""
  _, person, counts = np.unique(np.asarray(person_ids), return_inverse=True, return_counts=True)
  mean = features.mean(axis=0)
  centred = features - mean
  dims = min(dims, *centred.shape)
  axes = principal_axes(centred, dims)
  projected = centred @ axes
  person_means = np.zeros((counts.size, dims))
  np.add.at(person_means, person, projected)
  person_means /= counts[:, None]
  repeated = counts[person] >= 2
  within = projected[repeated] - person_means[person[repeated]]
  covariance = within.T @ within / within.shape[0]
  covariance += ridge * np.trace(covariance) / dims * np.eye(dims)
  values, vectors = np.linalg.eigh(covariance)
  return mean.astype(np.float32), (axes @ (vectors / np.sqrt(values))).astype(np.float32)
