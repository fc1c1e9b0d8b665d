"""Streamed sliding window: nnU-Net's Gaussian-weighted tiles over a scene in bands, every fold, bounded memory.

nnU-Net's ``nnUNetPredictor`` predicts a scene fold by fold and keeps each
fold's logits for the whole scene. Here the scene is walked in *bands*
(:func:`stream_bands`): the tiles of one tile row, all columns. For each
band, fold after fold, the network runs on the band's tiles (several tiles
per call, :func:`tiles_per_batch`) and adds its Gaussian-weighted logits
into a working window one tile high and the scene's width, which starts
with what that fold's tiles of the band above left in it (its *carry*).
The rows above the next tile row are then complete: they are handed on (in
chunks of :data:`CHUNK_ROWS` rows), and the rows the band's tiles overlap
into the next band become the fold's carry. Memory is one window, plus one
carry (``classes x overlap rows x scene width``) per fold, not one scene per
fold.

The arithmetic is nnU-Net's, called rather than copied: tile positions
(``compute_steps_for_sliding_window``), the Gaussian importance map
(``compute_gaussian``, ``sigma_scale = 1/8``, ``value_scaling_factor = 10``),
the network call with test-time mirroring
(``nnUNetPredictor._internal_maybe_mirror_and_predict``), and the
accumulation: logits times the Gaussian added in ``float16`` tile by tile in
nnU-Net's order (rows, then columns), divided by the summed Gaussian in
``float16``. Models of nnU-Net v1 (``model import-v1``) average class
*probabilities* instead, as v1's ``predict_2D`` does: with
``average_probabilities`` each mirrored copy's softmax is averaged and
Gaussian-weighted, and the bands hand on the logarithm of the averaged
probabilities, whose softmax downstream gives them back unchanged. On CUDA the network runs under autocast, in channels-last
memory format, and tiles are copied to the device from pinned memory.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from tqdm import tqdm

#: A network call takes at most this many tile pixels (batches of small tiles; large tiles one at a time).
BATCH_PIXELS = 512 * 512
#: Complete rows are handed on in chunks of at most this many rows (bounds the consumer's temporaries).
CHUNK_ROWS = 64
#: A scene with more tiles than this shows a progress bar (tiles x folds) when progress is on.
PROGRESS_MIN_TILES = 16
#: nnU-Net's Gaussian importance map settings (``nnUNetPredictor._internal_predict_sliding_window_return_logits``).
GAUSSIAN_SIGMA_SCALE = 1.0 / 8
GAUSSIAN_VALUE_SCALING = 10


def tile_starts(shape: Sequence[int], patch: Sequence[int], step_size: float) -> tuple[list[int], list[int]]:
    """nnU-Net's tile positions (first row, first column of each tile, pixels) for an image of ``shape`` >= ``patch``."""
    from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window

    rows, cols = compute_steps_for_sliding_window(tuple(shape), tuple(patch), step_size)
    return list(rows), list(cols)


def tiles_per_batch(patch: Sequence[int]) -> int:
    """How many tiles of ``patch`` (pixels) one network call takes: :data:`BATCH_PIXELS` worth, at least one."""
    return max(1, BATCH_PIXELS // (int(patch[0]) * int(patch[1])))


def gaussian_weights(patch: Sequence[int], device: torch.device) -> torch.Tensor:
    """nnU-Net's Gaussian importance map of a tile (``float16``, ``patch`` shaped, maximum 10)."""
    from nnunetv2.inference.sliding_window_prediction import compute_gaussian

    return compute_gaussian(tuple(int(p) for p in patch), sigma_scale=GAUSSIAN_SIGMA_SCALE,
                            value_scaling_factor=GAUSSIAN_VALUE_SCALING, device=device)


def _prepare_network(nnunet) -> None:
    """Put the predictor's network on its device in evaluation mode (channels-last on CUDA)."""
    network = nnunet.network.to(nnunet.device)
    if nnunet.device.type == "cuda":
        network = network.to(memory_format=torch.channels_last)
    nnunet.network = network.eval()


class SoftmaxOf(torch.nn.Module):
    """A network's class probabilities (softmax over the channels) in place of its logits."""

    def __init__(self, network: torch.nn.Module):
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.network(x).float(), 1)


def _mirrored_prediction(nnunet, tiles: torch.Tensor, probabilities: bool) -> torch.Tensor:
    """nnU-Net's (mirrored) prediction of ``tiles``: the mean logits, or with ``probabilities`` the mean softmax."""
    if not probabilities:
        return nnunet._internal_maybe_mirror_and_predict(tiles)
    network = nnunet.network
    nnunet.network = SoftmaxOf(network)  # nnU-Net's own mirroring, of probabilities (nnU-Net v1's averaging)
    try:
        return nnunet._internal_maybe_mirror_and_predict(tiles)
    finally:
        nnunet.network = network


def _tile_logits(nnunet, band: torch.Tensor, cols: Sequence[int], patch: Sequence[int],
                 gaussian: torch.Tensor, probabilities: bool = False) -> torch.Tensor:
    """The Gaussian-weighted logits ``(tiles, classes, *patch)`` (on the CPU) of the band's tiles at ``cols``
    (with ``probabilities``: class probabilities, see the module doc).

    ``band``: the preprocessed input rows of one tile row ``(channels, patch rows, width)``.
    """
    tiles = torch.stack([band[:, :, col:col + patch[1]] for col in cols])
    device = nnunet.device
    if device.type == "cuda":
        tiles = tiles.pin_memory().to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda"):
            logits = _mirrored_prediction(nnunet, tiles, probabilities)
    else:
        logits = _mirrored_prediction(nnunet, tiles.to(device), probabilities)
    logits *= gaussian
    return logits.to("cpu")


@dataclass
class Band:
    """One tile row of a streamed sliding window: rows ``[first, end)`` of the data are complete once
    :meth:`fold_logits` has been run through (the rows below belong to the next band)."""

    first: int
    end: int
    fold_logits: Callable[[], Iterator[tuple[int, int, int, torch.Tensor]]]


def stream_bands(nnunet, data: torch.Tensor, *, progress: bool = False,
                 average_probabilities: bool = False) -> Iterator[Band]:
    """The sliding window of ``data`` band by band, top to bottom (see the module doc).

    ``nnunet``: an initialised ``nnUNetPredictor`` (network, the folds'
    parameters in ``list_of_parameters``, patch size, ``tile_step_size``,
    mirroring). ``data``: the preprocessed image ``(channels, rows, cols)``,
    at least one patch in each direction (padded as nnU-Net pads). Each
    :class:`Band`'s ``fold_logits()`` runs every fold's network on the band's
    tiles and yields, fold by fold, ``(fold index, first row, end row,
    logits)``: the complete rows of the band in chunks of at most
    :data:`CHUNK_ROWS`, as ``float32`` averaged logits ``(classes, rows,
    cols)``. Run it through before asking for the next band. Between bands
    each fold keeps only the rows its tiles overlap into the next band.
    ``average_probabilities``: nnU-Net v1's averaging (module doc); the
    yielded "logits" are then the logarithm of the averaged probabilities.
    """
    patch = tuple(int(p) for p in nnunet.configuration_manager.patch_size)
    height, width = data.shape[1:]
    rows, cols = tile_starts((height, width), patch, nnunet.tile_step_size)
    folds = nnunet.list_of_parameters
    _prepare_network(nnunet)
    gaussian = gaussian_weights(patch, nnunet.device if nnunet.device.type == "cuda" else torch.device("cpu"))
    gaussian_cpu = gaussian.to("cpu")
    n_classes = nnunet.label_manager.num_segmentation_heads
    carries = [torch.zeros((n_classes, 0, width), dtype=torch.half) for _ in folds]
    working = torch.zeros((n_classes, patch[0], width), dtype=torch.half)
    weight = torch.zeros((patch[0], width), dtype=torch.half)
    batch = tiles_per_batch(patch)
    n_tiles = len(rows) * len(cols)
    bar = tqdm(total=n_tiles * len(folds), desc="tiles x folds", unit="tile", leave=False,
               disable=not progress or n_tiles <= PROGRESS_MIN_TILES)

    def band_logits(top: int, bottom: int) -> Iterator[tuple[int, int, int, torch.Tensor]]:
        band = data[:, top:top + patch[0]]
        for index, parameters in enumerate(folds):
            if len(folds) > 1:
                nnunet.network.load_state_dict(parameters)
            working.zero_()
            working[:, :carries[index].shape[1]] = carries[index]
            with torch.inference_mode():
                for first in range(0, len(cols), batch):
                    batch_cols = cols[first:first + batch]
                    tile_logits = _tile_logits(nnunet, band, batch_cols, patch, gaussian, average_probabilities)
                    for col, logits in zip(batch_cols, tile_logits):
                        working[:, :, col:col + patch[1]] += logits
                    bar.update(len(batch_cols))
            for start in range(0, bottom - top, CHUNK_ROWS):
                stop = min(start + CHUNK_ROWS, bottom - top)
                mean = (working[:, start:stop] / weight[start:stop]).float()
                yield index, top + start, top + stop, mean.log() if average_probabilities else mean
            carries[index] = working[:, bottom - top:].clone()

    with bar:
        for index, top in enumerate(rows):
            for col in cols:
                weight[:, col:col + patch[1]] += gaussian_cpu
            bottom = rows[index + 1] if index + 1 < len(rows) else height
            yield Band(top, bottom, functools.partial(band_logits, top, bottom))
            _move_up(weight, bottom - top)


#: glibc's ``mallopt`` parameter of the mmap threshold (``M_MMAP_THRESHOLD`` in ``malloc.h``).
_M_MMAP_THRESHOLD = -3
#: Allocations from this size (bytes) on get their own memory mapping, returned to the system when freed.
MMAP_THRESHOLD_BYTES = 1 << 20


@functools.cache
def map_large_allocations() -> bool:
    """Fix glibc's mmap threshold at :data:`MMAP_THRESHOLD_BYTES` for this process; whether it was set.

    By default glibc raises the threshold (up to 32 MB) each time a mapped
    block is freed, after which a band's temporaries of a few MB come from
    the heap, whose freed parts stay in the process: peak memory then grows
    with the number of folds (measured on 9 Mpx with five folds: 1.77 GB,
    1.44 GB with the threshold fixed; 36 Mpx: 2.49 GB, 2.03 GB). The price
    is speed: every large temporary is a fresh mapping to fault in (a
    1500-px scene with the stand-in network: 0.42 s, 1.4-1.8 s with it). A
    no-op returning ``False`` on other C libraries.
    """
    library = ctypes.util.find_library("c")
    mallopt = getattr(ctypes.CDLL(library), "mallopt", None) if library else None
    return bool(mallopt is not None and mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


def _move_up(window: torch.Tensor, rows: int) -> None:
    """Shift a window's rows (axis -2) up by ``rows`` in place, zeros coming in at the bottom."""
    kept = window.shape[-2] - rows
    if kept > 0:
        window[..., :kept, :] = window[..., rows:, :].clone()
    window[..., max(kept, 0):, :] = 0
