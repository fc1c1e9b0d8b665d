"""Temporal context: other acquisitions of the same glacier as extra input channels.

An experiment's ``temporal`` setting (:class:`TemporalSettings`, e.g.
``"temporal": {"previous": 2}`` in ``configs/``) gives each scene ``K =
previous`` earlier and ``N = next`` later acquisitions of its glacier as
input channels beside its own image, in nnU-Net's channel files::

    <stem>_0000.png            the scene itself
    <stem>_0001 .. _000K       the K previous acquisitions, the nearest (latest before the scene) first
    <stem>_000(K+1) .. (K+N)   the N next acquisitions, the nearest (earliest after the scene) first

Each context image is resized to the scene's shape (:func:`resize_to`):
CaFFe's acquisitions of one glacier cover about the same area at different
pixel sizes, so the scene's pixel grid is the grid of every channel.

Rules of the selection (:func:`select_context`, pure: names in, stems out):

- candidates are the scenes (:class:`Acquisition`) of the same glacier in
  the pool given; for CaFFe, glacier and date are those of the names
  (:class:`~nnunet_glacier.data.caffe.SceneName`);
- *previous* means a strictly earlier date, *next* a strictly later one;
  acquisitions of one date are ordered by stem, so the choice is
  deterministic;
- a scene with fewer than ``K`` earlier acquisitions uses those it has and
  repeats the earliest of them; with none it repeats its own image (the same
  for later ones: the latest found, else the scene). How many were found is
  recorded per scene (:class:`SceneContext`).

No leakage: the pool is one split's *images* — :func:`contexts_by_split`
selects a training scene's context among the training images and a test
scene's among the test images; labels are never read for a context.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from nnunet_glacier.data.caffe import Sample, SceneName, read_grey

#: nnU-Net's channel name of the scene's own SAR image (channel 0).
SCENE_CHANNEL = "SAR"


@dataclass(frozen=True)
class TemporalSettings:
    """How many other acquisitions of the glacier feed a scene: ``previous`` earlier and ``next`` later ones.

    Both are counts of acquisitions (>= 0); ``0`` and ``0`` (the default) is a
    single-channel model of the scene alone.
    """

    previous: int = 0
    next: int = 0

    def __post_init__(self) -> None:
        for name in ("previous", "next"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"temporal {name!r} must be a whole number >= 0, got {value!r}")

    @property
    def n_channels(self) -> int:
        """Input channels of a model: the scene and its ``previous + next`` context acquisitions."""
        return 1 + self.previous + self.next

    @property
    def enabled(self) -> bool:
        """Whether any context acquisition is used."""
        return self.n_channels > 1


@dataclass(frozen=True)
class Acquisition:
    """What the selection knows of a scene: its stem, its glacier (a name or code) and its acquisition date."""

    stem: str
    glacier: str
    date: dt.date

    @classmethod
    def of(cls, name: SceneName) -> Acquisition:
        """The acquisition a CaFFe name describes."""
        return cls(name.stem, name.glacier, name.date)


@dataclass(frozen=True)
class SceneContext:
    """The acquisitions that feed one scene.

    ``channels``: the stems of channels ``1 .. previous + next`` in channel
    order (a stem repeats where fewer acquisitions exist; the scene's own stem
    where there is none); ``previous_found`` / ``next_found``: how many
    distinct earlier / later acquisitions were found (at most the settings').
    """

    stem: str
    channels: tuple[str, ...]
    previous_found: int
    next_found: int

    def record(self) -> dict[str, Any]:
        """The scene's entry in the export's record (``dataset.json``'s ``caffe.temporal.scenes``)."""
        return {"channels": list(self.channels), "previous_found": self.previous_found,
                "next_found": self.next_found}


def _filled(found: Sequence[str], count: int, own: str) -> tuple[str, ...]:
    """``count`` stems: ``found`` (nearest first), then its last (the farthest) repeated, or ``own`` if empty."""
    chosen = list(found[:count])
    return (*chosen, *[chosen[-1] if chosen else own] * (count - len(chosen)))


def select_context(names: Iterable[Acquisition], settings: TemporalSettings) -> dict[str, SceneContext]:
    """Each scene's context among ``names`` (the pool: pass one split's scenes), by stem (see the module rules).

    Raises ``ValueError`` if a stem occurs twice in the pool.
    """
    by_glacier: dict[str, list[Acquisition]] = defaultdict(list)
    seen: set[str] = set()
    for name in names:
        if name.stem in seen:
            raise ValueError(f"scene {name.stem} occurs twice among the context candidates")
        seen.add(name.stem)
        by_glacier[name.glacier].append(name)
    contexts = {}
    for scenes in by_glacier.values():
        ordered = sorted(scenes, key=lambda n: (n.date, n.stem))
        for name in ordered:
            earlier = [n.stem for n in reversed(ordered) if n.date < name.date]
            later = [n.stem for n in ordered if n.date > name.date]
            contexts[name.stem] = SceneContext(
                name.stem, (*_filled(earlier, settings.previous, name.stem), *_filled(later, settings.next, name.stem)),
                min(len(earlier), settings.previous), min(len(later), settings.next))
    return dict(sorted(contexts.items()))


def contexts_by_split(samples: Iterable[Sample], settings: TemporalSettings) -> dict[str, SceneContext]:
    """Each sample's context among the images of its own split (training scenes from training images, test
    scenes from test images: no leakage), by stem."""
    splits: dict[str, list[Acquisition]] = defaultdict(list)
    for sample in samples:
        splits[sample.split].append(Acquisition.of(sample.name))
    return {stem: context for names in splits.values() for stem, context in select_context(names, settings).items()}


def channel_names(settings: TemporalSettings) -> dict[str, str]:
    """nnU-Net's ``channel_names`` of ``dataset.json``: ``SAR``, then ``SAR_previous_1`` .., ``SAR_next_1`` ..

    Names other than nnU-Net's reserved ones (``CT``, ``noNorm``, ...) get its
    z-score normalisation, each channel on its own.
    """
    names = [SCENE_CHANNEL, *(f"{SCENE_CHANNEL}_previous_{k}" for k in range(1, settings.previous + 1)),
             *(f"{SCENE_CHANNEL}_next_{k}" for k in range(1, settings.next + 1))]
    return {str(index): name for index, name in enumerate(names)}


def channel_suffix(index: int) -> str:
    """nnU-Net's suffix of channel ``index`` of a case's image files: ``_0000``, ``_0001``, ..."""
    return f"_{index:04d}"


def export_record(settings: TemporalSettings, contexts: Mapping[str, SceneContext]) -> dict[str, Any]:
    """What export records of the temporal context (``dataset.json``'s ``caffe.temporal``): the settings and,
    per scene, the acquisitions of its channels (:meth:`SceneContext.record`)."""
    return {"previous": settings.previous, "next": settings.next,
            "scenes": {stem: context.record() for stem, context in sorted(contexts.items())}}


def recorded_settings(dataset_json: Mapping[str, Any]) -> TemporalSettings:
    """The temporal settings an export recorded in a ``dataset.json`` (none recorded: no context)."""
    recorded = dataset_json.get("caffe", {}).get("temporal") or {}
    return TemporalSettings(int(recorded.get("previous", 0)), int(recorded.get("next", 0)))


def resize_to(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``image`` resampled to ``shape`` (rows, cols): area averaging when it shrinks, bilinear when it grows."""
    if image.shape == tuple(shape):
        return image
    shrinks = image.shape[0] * image.shape[1] > shape[0] * shape[1]
    return cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_AREA if shrinks else cv2.INTER_LINEAR)


def stack_channels(image: np.ndarray, context: Sequence[str | Path]) -> np.ndarray:
    """A scene's input channels ``(1 + len(context), rows, cols)``, ``uint8``: its grey image, then each context
    image file (read as grey, resized to the image's shape) in order."""
    shape = (int(image.shape[0]), int(image.shape[1]))
    return np.stack([image, *(resize_to(read_grey(path), shape) for path in context)])
