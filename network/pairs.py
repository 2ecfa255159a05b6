"""psa's pixel pairs of AffinityNet: the radius-5 neighbourhood on the 1/8 feature map
(`get_indices_of_pairs`) and the dense (hw, hw) affinity matrix built from the pair
affinities. Shared by the network (network/resnet38_aff.py), its training labels
(tool/psa/aff_labels.py) and the random walk (tool/psa/random_walk.py)."""
import numpy as np
import torch

from network.resnet38d import OUTPUT_STRIDE

PAIR_RADIUS = 5  # psa resnet38_aff / train_aff radius


def search_directions(radius):
    """psa's pair offsets (dy, dx): (0, 1..r-1), then dy 1..r-1 with dx -(r-1)..r-1 (dx
    fastest) inside the open disc dx^2 + dy^2 < r^2. 34 directions for r = 5."""
    dirs = [(0, dx) for dx in range(1, radius)]
    dirs += [(dy, dx) for dy in range(1, radius) for dx in range(1 - radius, radius)
             if dx * dx + dy * dy < radius * radius]
    return dirs


def min_input_size(radius=PAIR_RADIUS):
    """(height, width) of the smallest input whose feature map has pairs: r high and 2r-1
    wide at output stride 8 (33 x 65 px for r = 5)."""
    return OUTPUT_STRIDE * (radius - 1) + 1, OUTPUT_STRIDE * (2 * radius - 2) + 1


def check_feature_size(radius, size):
    """The pairs need a map at least 2r-1 wide and r high (psa crashes in a reshape)."""
    height, width = size
    if height < radius or width < 2 * radius - 1:
        min_h, min_w = min_input_size(radius)
        raise ValueError(f"affinity pairs of radius {radius} need a feature map at least "
                         f"{radius} high and {2 * radius - 1} wide, got {height}x{width} "
                         f"(input at least {min_h} px high and {min_w} px wide)")


def get_indices_of_pairs(radius, size):
    """psa pyutils.get_indices_of_pairs: raster indices of the "from" pixels (rows 0..h-r,
    columns r-1..w-r), M of them, and of their partners, direction-major (D*M,)."""
    check_feature_size(radius, size)
    height, width = size
    grid = np.arange(height * width, dtype=np.int64).reshape(height, width)
    rows, cols = height - radius + 1, width - 2 * (radius - 1)
    ind_from = grid[:rows, radius - 1:radius - 1 + cols].reshape(-1)
    ind_to = np.concatenate([grid[dy:dy + rows, radius - 1 + dx:radius - 1 + dx + cols].reshape(-1)
                             for dy, dx in search_directions(radius)])
    return ind_from, ind_to


def get_indices_in_radius(height, width, radius):
    """psa infer_aff.get_indices_in_radius: the same pairs as (from, to) rows."""
    ind_from, ind_to = get_indices_of_pairs(radius, (height, width))
    return np.stack([np.tile(ind_from, ind_to.size // ind_from.size), ind_to], axis=1)


def dense_affinity(aff, feat_size, radius=PAIR_RADIUS):
    """The (hw, hw) symmetric matrix of psa `forward(x, to_dense=True)`: the pair
    affinities (D, M) at (from, to) and (to, from), 1 on the diagonal, 0 elsewhere."""
    pairs = torch.from_numpy(get_indices_in_radius(*feat_size, radius)).to(aff.device)
    area = feat_size[0] * feat_size[1]
    dense = torch.zeros(area, area, dtype=aff.dtype, device=aff.device)
    values = aff.reshape(-1)
    dense[pairs[:, 0], pairs[:, 1]] = values
    dense[pairs[:, 1], pairs[:, 0]] = values
    dense.fill_diagonal_(1)
    return dense
