"""A stand-in for :class:`nnunet_glacier.nnunet.predict.GlacierPredictor`: zone probabilities that are a known
function of the grey values, so ``detect`` runs in a fraction of a second without a trained model.

Zones by grey value ``g`` (0..255 of the image ``detect`` passes): ocean around :data:`OCEAN_GREY`, glacier
around :data:`GLACIER_GREY`, rock around :data:`ROCK_GREY`; each class's score falls off with ``|g - centre|``
and the probabilities are their softmax (NA gets a low constant score). Fold ``k`` shifts the centres by ``k``
grey levels, so two folds agree almost everywhere but not exactly (a defined, small disagreement).
:func:`scene_image` draws scenes this predictor segments as wanted: ocean left, glacier in the middle, rock right,
so the front is the straight vertical line between the first two.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nnunet_glacier.data.tasks import TASKS
from nnunet_glacier.data.temporal import TemporalSettings
from nnunet_glacier.nnunet.prediction_types import ScenePrediction
from nnunet_glacier.nnunet.uncertainty import fold_disagreement, normalised_entropy

OCEAN_GREY, GLACIER_GREY, ROCK_GREY = 40, 130, 220
#: Grey levels over which a class's score falls by one (the softmax temperature).
SCALE_GREY = 10.0


class StandInPredictor:
    """The predictor interface ``detect`` uses (``tasks``, ``folds``, ``model_dir``, ``temporal``, ``predict``,
    ``made_from``).

    ``version`` stands for the trained weights: another version is another model in :meth:`made_from`.
    ``delay_s`` makes each prediction take that long, and ``marker`` (a folder) gets a file
    ``predicting_<n>`` when the ``n``-th prediction (from 1) starts — for tests that interrupt a run at a
    chosen scene.

    ``temporal`` stands for a model with temporal context (as ``GlacierPredictor.temporal``): it then takes
    ``(channels, rows, cols)`` and segments channel 0, the scene. Every prediction's input is kept in
    ``inputs`` (a copy, ``(channels, rows, cols)``: one channel for a model without context), in call order.
    """

    def __init__(self, model_dir: str | Path, folds: Sequence[int] = (0, 1), *, version: str = "1",
                 delay_s: float = 0.0, marker: str | Path | None = None,
                 temporal: TemporalSettings = TemporalSettings()):
        self.model_dir = Path(model_dir)
        self.tasks = [TASKS["zone"]]
        self.folds = list(folds)
        self.version = version
        self.delay_s = delay_s
        self.marker = None if marker is None else Path(marker)
        self.calls = 0
        self.temporal = temporal
        self.inputs: list[np.ndarray] = []

    def made_from(self) -> dict:
        return {"model": str(self.model_dir.resolve()), "folds": [str(f) for f in self.folds],
                "version": self.version}

    def fold_probabilities(self, image: np.ndarray, fold: int) -> np.ndarray:
        """Fold ``fold``'s zone probabilities ``(4, rows, cols)`` (classes NA, rock, glacier, ocean), ``float32``."""
        grey = image.astype(np.float64)
        centres = np.array([ROCK_GREY, GLACIER_GREY, OCEAN_GREY], dtype=np.float64) + fold
        scores = -np.abs(grey[None] - centres[:, None, None]) / SCALE_GREY
        logits = np.concatenate([np.full((1, *grey.shape), -30.0), scores])
        probabilities = np.exp(logits - logits.max(axis=0))
        return (probabilities / probabilities.sum(axis=0)).astype(np.float32)

    def predict(self, image: np.ndarray, *, members: bool = False, probabilities: bool = False,
                measure: Sequence[str] = (), progress: bool = False) -> ScenePrediction:
        """As :meth:`GlacierPredictor.predict`: the folds' ensemble (mean probabilities) of the scene (channel 0),
        with what is asked for; ``ValueError`` when ``image`` does not have the model's channels."""
        channels = image[None] if image.ndim == 2 else image
        if channels.ndim != 3 or len(channels) != self.temporal.n_channels:
            raise ValueError(f"expected {self.temporal.n_channels} input channels, got shape {image.shape}")
        self.inputs.append(np.array(channels))
        image = channels[0]
        self.calls += 1
        if self.marker is not None:
            (self.marker / f"predicting_{self.calls}").write_text("")
        if self.delay_s:
            time.sleep(self.delay_s)
        folds = [self.fold_probabilities(image, fold) for fold in self.folds]
        mean = np.mean(folds, axis=0)
        ensemble = ScenePrediction.from_probabilities({"zone": mean})
        if not probabilities:
            ensemble.probabilities.clear()
        if "zone" in measure:
            ensemble.uncertainty["zone"] = normalised_entropy(mean)
            if len(folds) > 1:
                ensemble.disagreement["zone"] = fold_disagreement(folds).astype(np.float16)
        if members:
            for fold in folds:
                member = ScenePrediction.from_probabilities({"zone": fold})
                if not probabilities:
                    member.probabilities.clear()
                ensemble.members.append(member)
        return ensemble


def scene_image(shape: tuple[int, int] = (64, 64), front_col: int = 24, rock_col: int = 48,
                seed: int = 0) -> np.ndarray:
    """A ``uint8`` scene: ocean (columns ``< front_col``), glacier, rock (``>= rock_col``), with a little noise."""
    image = np.full(shape, GLACIER_GREY, dtype=np.float64)
    image[:, :front_col] = OCEAN_GREY
    image[:, rock_col:] = ROCK_GREY
    image += np.random.default_rng(seed).normal(0, 3, shape)
    return np.clip(np.round(image), 1, 255).astype(np.uint8)


def run_detect_in_subprocess() -> None:
    """Entry of a child process: ``detect`` with a stand-in, arguments as JSON in ``$STANDIN_DETECT``.

    Keys: ``scenes`` (paths), ``out``, ``model``, ``delay_s``, ``marker``, and ``pause_before`` — a function
    named from a module of the package (``"field.detect.read_records"``, ``"utilities.atomic.os.replace"``) that,
    when called, first writes ``<marker>/pause_<function>`` and sleeps ``delay_s`` (a point to interrupt at; without it each
    prediction sleeps ``delay_s``). Exits 130 on ``KeyboardInterrupt``, as the command line does.
    """
    import importlib
    import sys

    from nnunet_glacier.field import detect

    args = json.loads(os.environ["STANDIN_DETECT"])
    marker = Path(args["marker"])
    if args.get("pause_before"):
        package, module, *middle, function_name = args["pause_before"].split(".")
        owner = importlib.import_module(f"nnunet_glacier.{package}.{module}")
        for name in middle:
            owner = getattr(owner, name)
        original = getattr(owner, function_name)

        def paused(*positional, **keywords):
            (marker / f"pause_{function_name}").write_text("")
            time.sleep(args["delay_s"])
            return original(*positional, **keywords)

        setattr(owner, function_name, paused)
    predictor = StandInPredictor(args["model"], delay_s=0.0 if args.get("pause_before") else args["delay_s"],
                                 marker=marker)
    try:
        detect.detect(predictor, [Path(p) for p in args["scenes"]], args["out"], progress=True)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    run_detect_in_subprocess()
