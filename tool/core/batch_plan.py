"""Step-indexed training batches for exact --resume: the batch of global step s is a
function of (--seed, s) alone (each epoch a seeded shuffle, each image its own
augmentation seed), so a run resumed at step s sees the batches an uninterrupted run
would have seen, whatever the number of DataLoader workers. train_AuxAff.py plans with
AuxSegNet's epochs (tool.auxsegnet.training.epoch_batches: one scale per batch), train_seg.py with
`seeded_epoch_batches`."""
import numpy as np
from torch.utils.data import Dataset

ITEM_SEED_RANGE = 2 ** 31


class StepPlan:
    """Every batch from global step `start` to `stop`, as a DataLoader `batch_sampler`:
    `epoch_batches(epoch)` lists an epoch's `per_epoch` batches."""

    def __init__(self, epoch_batches, per_epoch, start, stop):
        if per_epoch < 1:
            raise ValueError("a batch plan needs at least one batch per epoch")
        self.epoch_batches, self.per_epoch = epoch_batches, per_epoch
        self.start, self.stop = start, stop

    def __len__(self):
        return max(0, self.stop - self.start)

    def __iter__(self):
        batches, current = None, None
        for step in range(self.start, self.stop):
            epoch, index = divmod(step, self.per_epoch)
            if epoch != current:
                batches, current = self.epoch_batches(epoch), epoch
            yield batches[index]


def seeded_epoch_batches(num_images, batch_size, epoch, seed=0, rank=0, world_size=1):
    """One epoch of this rank's batches: lists of (image index, item seed). A seeded
    shuffle cut into num_images // (batch_size * world_size) global batches; rank r takes
    members r, r + world_size, ... of each, `batch_size` per rank."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(num_images)
    seeds = rng.integers(0, ITEM_SEED_RANGE, size=num_images)
    step = batch_size * world_size
    return [[(int(order[i]), int(seeds[i])) for i in range(b * step + rank, (b + 1) * step,
                                                           world_size)]
            for b in range(num_images // step)]


class SeededItems(Dataset):
    """Items addressed by the (index, seed) keys of `seeded_epoch_batches`:
    transform(dataset[index], np.random.default_rng(seed))."""

    def __init__(self, dataset, transform):
        self.dataset, self.transform = dataset, transform

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        index, seed = key
        return self.transform(self.dataset[index], np.random.default_rng(seed))
