"""Where nnU-Net's folders live, and telling nnU-Net about them and about our trainers.

nnU-Net v2 reads its folders from the environment variables ``nnUNet_raw``,
``nnUNet_preprocessed`` and ``nnUNet_results`` and finds external trainers
through ``nnUNet_extTrainer``. Our commands set them from a work directory
(``<work>/nnUNet_raw`` ...) or keep the user's own when no work directory is
given and all three are set.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TRAINER_DIR = Path(__file__).resolve().parent / "trainers" / "nnunet_ext"
NNUNET_FOLDERS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
DEFAULT_WORK = Path("work")


@dataclass(frozen=True)
class Workspace:
    raw: Path
    preprocessed: Path
    results: Path

    @classmethod
    def from_work_dir(cls, work: str | Path) -> Workspace:
        work = Path(work).resolve()
        return cls(work / "nnUNet_raw", work / "nnUNet_preprocessed", work / "nnUNet_results")

    @classmethod
    def resolve(cls, work: str | Path | None, default: str | Path = DEFAULT_WORK) -> Workspace:
        """``work`` if given; else the user's nnU-Net variables if all are set; else ``default`` (``./work``)."""
        if work is None and all(os.environ.get(v) for v in NNUNET_FOLDERS):
            return cls(*(Path(os.environ[v]) for v in NNUNET_FOLDERS))
        return cls.from_work_dir(work if work is not None else default)

    def activate(self) -> Workspace:
        """Create the folders and export them (and our trainer folder) to nnU-Net."""
        for name, path in zip(NNUNET_FOLDERS, (self.raw, self.preprocessed, self.results)):
            path.mkdir(parents=True, exist_ok=True)
            os.environ[name] = str(path)
        add_trainer_path()
        # nnU-Net's default of 8 export/validation processes overloads small machines
        os.environ.setdefault("nnUNet_def_n_proc", str(min(8, os.cpu_count() or 1)))
        return self


def add_trainer_path() -> None:
    """Put our trainer folder on ``nnUNet_extTrainer`` (keeping any folders already there)."""
    paths = [p for p in os.environ.get("nnUNet_extTrainer", "").split(os.pathsep) if p]
    if str(TRAINER_DIR) not in paths:
        os.environ["nnUNet_extTrainer"] = os.pathsep.join([*paths, str(TRAINER_DIR)])
