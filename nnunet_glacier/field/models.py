"""Trained models as files: export to a zip with a model card, install, and find a model for ``detect -m``.

The zip follows nnU-Net's own model sharing (``nnUNetv2_export_model_to_zip``
/ ``nnUNetv2_install_pretrained_model_from_zip``): its paths are relative to
an ``nnUNet_results`` folder, ``<DatasetNNN_Name>/<Trainer>__<Plans>__<Configuration>/``,
holding ``plans.json``, ``dataset.json``, ``dataset_fingerprint.json`` and,
per exported fold, ``fold_K/checkpoint_final.pth``, ``fold_K/validation/summary.json``
(and, when present, ``summary_tasks.json``, ``progress.png``, ``debug.json``).
nnU-Net can install it as it is. We add a model card in the model folder:
``model_card.json`` (:func:`model_card`) and its human-readable
``model_card.md``. Models trained elsewhere (nnU-Net v1's, see
:mod:`nnunet_glacier.field.v1_import`) carry their experiment and provenance in the
``caffe`` block of ``dataset.json`` (``experiment``, ``imported_from``), and
their cards show them.

Installed models live in ``<home>/models/<name>/``, each an ``nnUNet_results``
folder of one model; ``<home>`` is ``$NNUNET_GLACIER_HOME``, else
``$XDG_CACHE_HOME/nnunet_glacier``, else ``~/.cache/nnunet_glacier``.
Downloads are kept in ``<home>/downloads/<sha256>.zip``, so a URL is fetched
once. :func:`resolve_model` turns what ``detect -m`` was given — a model
folder, a zip, an installed model's name, or ``URL#sha256=<hex>`` (any URL
scheme ``urllib`` opens: ``https``, ``file``, ...) — into a model folder.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import re
import statistics
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from tqdm import tqdm

from nnunet_glacier.errors import ModelError
from nnunet_glacier.utilities.atomic import atomic_folder, atomic_path, write_json, write_text

CARD_JSON = "model_card.json"
CARD_MARKDOWN = "model_card.md"
CHECKPOINT = "checkpoint_final.pth"
#: Files of a model folder and of each fold that go into the zip (the fold files when present).
MODEL_FILES = ("plans.json", "dataset.json", "dataset_fingerprint.json")
FOLD_FILES = (CHECKPOINT, "validation/summary.json", "validation/summary_tasks.json", "progress.png", "debug.json")
#: Packages whose versions the model card records.
PACKAGES = ("nnunet_glacier", "nnunetv2", "torch", "dynamic_network_architectures", "numpy")
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


def home() -> Path:
    """Where installed models and downloads are kept (see the module doc)."""
    if os.environ.get("NNUNET_GLACIER_HOME"):
        return Path(os.environ["NNUNET_GLACIER_HOME"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "nnunet_glacier"


def models_dir() -> Path:
    return home() / "models"


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, as 64 lower-case hex digits."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- export ------------------------------------------------------------------------------------------------------

def trained_folds(model_dir: Path) -> list[int]:
    """The folds of a model folder with a final checkpoint, in order."""
    return sorted(int(p.parent.name.removeprefix("fold_")) for p in model_dir.glob(f"fold_*/{CHECKPOINT}")
                  if p.parent.name.removeprefix("fold_").isdigit())


def check_model_dir(model_dir: Path) -> dict[str, Any]:
    """The ``dataset.json`` of a trained model folder of ours; :class:`ModelError` naming what is missing."""
    if not model_dir.is_dir():
        raise ModelError(model_dir, "model folder not found")
    for name in MODEL_FILES:
        if not (model_dir / name).is_file():
            raise ModelError(model_dir, f"not a trained nnU-Net model folder: no {name}")
    dataset = json.loads((model_dir / "dataset.json").read_text())
    if "caffe" not in dataset:
        raise ModelError(model_dir / "dataset.json", "no 'caffe' block: not a model trained on a dataset exported "
                                                     "by nnunet_glacier")
    if not trained_folds(model_dir):
        raise ModelError(model_dir, f"no fold_K/{CHECKPOINT}: no trained fold")
    return dataset


def model_files(model_dir: Path, folds: list[int]) -> list[Path]:
    """The files of ``model_dir`` that go into the zip, relative to it (see :data:`MODEL_FILES`, :data:`FOLD_FILES`)."""
    files = [Path(name) for name in MODEL_FILES]
    for fold in folds:
        if not (model_dir / f"fold_{fold}" / CHECKPOINT).is_file():
            raise ModelError(model_dir / f"fold_{fold}", f"fold {fold} has no {CHECKPOINT}")
        files += [Path(f"fold_{fold}") / name for name in FOLD_FILES if (model_dir / f"fold_{fold}" / name).is_file()]
    return files


def _experiment_of(dataset_folder: str, trainer: str, configuration: str) -> dict[str, Any] | None:
    """The experiment (name, title, profile) whose dataset, trainer and configuration these are, if any."""
    from nnunet_glacier.data.experiments import load_experiments, profiles

    profile = configuration.removeprefix("2d_")
    if profile not in profiles():
        return None
    for experiment in load_experiments(profile).values():
        if (experiment.dataset, experiment.trainer) == (dataset_folder, trainer):
            return {"name": experiment.name, "title": experiment.title, "profile": profile}
    return None


def _validation(model_dir: Path, fold: int) -> dict[str, Any]:
    """A fold's validation: cases and nnU-Net's mean foreground Dice, plus per-task Dice when recorded."""
    folder = model_dir / f"fold_{fold}" / "validation"
    scores: dict[str, Any] = {}
    if (folder / "summary.json").is_file():
        summary = json.loads((folder / "summary.json").read_text())
        scores["dice_foreground_mean"] = summary.get("foreground_mean", {}).get("Dice")
        scores["cases"] = sorted(Path(case["reference_file"]).stem for case in summary.get("metric_per_case", []))
    if (folder / "summary_tasks.json").is_file():
        tasks = json.loads((folder / "summary_tasks.json").read_text())
        scores["dice_per_task"] = {task: values["mean_foreground"] for task, values in tasks.items()}
    return scores


def software_versions() -> dict[str, str]:
    """Versions of Python and of :data:`PACKAGES` (``"not installed"`` where absent)."""
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def model_card(model_dir: Path, name: str, folds: list[int], files: list[Path]) -> dict[str, Any]:
    """What a user needs to know before trusting a model (written as ``model_card.json``).

    Experiment and nnU-Net identifiers, tasks, training data (source, number
    of training cases, per-fold validation cases: the split), validation
    scores per fold, the pixel sizes trained on (metres; min, median, max
    and every distinct value), patch size, software versions, and the
    SHA-256 of every file of the model. An imported model's experiment and
    provenance (what is known of it and what is not) come from the
    ``caffe`` block of its ``dataset.json``.
    """
    dataset = check_model_dir(model_dir)
    trainer, plans, configuration = model_dir.name.split("__")
    caffe = dataset["caffe"]
    held_out = set(caffe.get("test_cases", []))
    sizes = sorted(size for stem, size in caffe.get("pixel_size_m", {}).items() if stem not in held_out)
    plans_json = json.loads((model_dir / "plans.json").read_text())
    validation = {str(fold): _validation(model_dir, fold) for fold in folds}
    card = {
        "name": name,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "experiment": _experiment_of(model_dir.parent.name, trainer, configuration) or caffe.get("experiment"),
        "nnunet": {"dataset": model_dir.parent.name, "trainer": trainer, "plans": plans,
                   "configuration": configuration},
        "tasks": caffe["tasks"],
        "training_data": {
            "source": caffe.get("source"),
            "n_training_cases": dataset.get("numTraining"),
            "n_test_cases_held_out": len(caffe.get("test_cases", [])),
            "split": "nnU-Net's 5-fold cross-validation of the training cases; each fold trains on the training "
                     "cases not in its validation cases",
        },
        "folds": folds,
        "validation": validation,
        "pixel_size_m": {"min": sizes[0], "median": statistics.median(sizes), "max": sizes[-1],
                         "values": sorted(set(sizes))} if sizes else None,
        "patch_size": plans_json.get("configurations", {}).get(configuration, {}).get("patch_size"),
        "software": software_versions(),
        "files": {str(path): sha256_of(model_dir / path) for path in files},
    }
    if "imported_from" in caffe:
        card["imported_from"] = caffe["imported_from"]
    return card


def write_model_card(model_dir: Path, name: str, folds: list[int]) -> dict[str, Any]:
    """Write ``model_card.json`` and ``model_card.md`` into a model folder (for all its files); returns the card."""
    card = model_card(model_dir, name, folds, model_files(model_dir, folds))
    write_json(model_dir / CARD_JSON, card)
    write_text(model_dir / CARD_MARKDOWN, card_markdown(card))
    return card


def card_markdown(card: dict[str, Any]) -> str:
    """The model card as Markdown for people."""
    experiment = card["experiment"]
    pixels = card["pixel_size_m"]
    trained_by = f"profile {experiment['profile']}" if experiment and experiment.get("profile") \
        else "trained outside nnunet_glacier"
    lines = [f"# Model card: {card['name']}", "",
             f"- experiment: {experiment['name']} ({experiment['title']}, {trained_by})"
             if experiment else "- experiment: not one of nnunet_glacier's configured experiments",
             f"- nnU-Net: {card['nnunet']['dataset']}, {card['nnunet']['trainer']}__{card['nnunet']['plans']}__"
             f"{card['nnunet']['configuration']}, patch {card['patch_size']}",
             f"- tasks: {', '.join(card['tasks'])}",
             f"- training data: {card['training_data']['n_training_cases']} cases from "
             f"{card['training_data']['source']}; {card['training_data']['split']}",
             f"- pixel sizes trained on: {pixels['min']:g} to {pixels['max']:g} m (median {pixels['median']:g} m)"
             if pixels else "- pixel sizes trained on: not recorded",
             f"- folds: {', '.join(map(str, card['folds']))}",
             f"- created {card['created']} with " + ", ".join(f"{k} {v}" for k, v in card["software"].items()),
             *_provenance_lines(card.get("imported_from")),
             "", "| fold | validation cases | Dice (nnU-Net, foreground mean) | Dice per task |",
             "|---:|---:|---:|---|"]
    for fold, scores in card["validation"].items():
        dice = scores.get("dice_foreground_mean")
        per_task = ", ".join(f"{t} {v:.3f}" for t, v in scores.get("dice_per_task", {}).items())
        lines.append(f"| {fold} | {len(scores.get('cases', []))} | {'' if dice is None else f'{dice:.3f}'} | "
                     f"{per_task} |")
    return "\n".join(lines) + "\n"


def _provenance_lines(imported: dict[str, Any] | None) -> list[str]:
    """Markdown lines for an imported model: where it came from, what is known of it and what is not."""
    if not imported:
        return []
    return ([f"- imported from {imported['format']}: {imported['source']}", "- known:"]
            + [f"  - {fact}" for fact in imported["known"]] + ["- not known:"]
            + [f"  - {fact}" for fact in imported["not_known"]])


def export_model(model_dir: str | Path, zip_path: str | Path, *, folds: list[int] | None = None,
                 name: str | None = None) -> dict[str, Any]:
    """Write a trained model folder (``<results>/<Dataset>/<Trainer__Plans__Config>``) as an installable zip.

    ``folds`` default to every trained fold; ``name`` (default: the zip's
    stem) is the model's name in its card and when installed. The zip is
    written atomically; returns the model card.
    """
    model_dir, zip_path = Path(model_dir).resolve(), Path(zip_path)
    name = check_name(zip_path.stem if name is None else name, zip_path)
    check_model_dir(model_dir)
    folds = trained_folds(model_dir) if folds is None else sorted(folds)
    files = model_files(model_dir, folds)
    card = model_card(model_dir, name, folds, files)
    prefix = Path(model_dir.parent.name) / model_dir.name
    with atomic_path(zip_path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in tqdm(files, desc=f"export {name}", unit="file"):
            archive.write(model_dir / path, str(prefix / path))
        archive.writestr(str(prefix / CARD_JSON), json.dumps(card, indent=2) + "\n")
        archive.writestr(str(prefix / CARD_MARKDOWN), card_markdown(card))
    return card


# --- install -----------------------------------------------------------------------------------------------------

def check_name(name: str, where: Path) -> str:
    if not MODEL_NAME.match(name):
        raise ModelError(where, f"model name {name!r} must start with a letter or digit and hold only letters, "
                                f"digits, '.', '_' and '-'")
    return name


def model_folder_in(root: Path) -> Path:
    """The one model folder (``<Dataset>/<Trainer__Plans__Config>`` with ``plans.json``) under an install root."""
    found = sorted(p.parent for p in root.glob("*/*/plans.json"))
    if len(found) != 1:
        raise ModelError(root, f"expected one model folder <Dataset>/<Trainer__Plans__Config>/, found {len(found)}"
                               + (f": {', '.join(str(p.relative_to(root)) for p in found)}" if found else ""))
    return found[0]


def _safe_members(archive: zipfile.ZipFile, zip_path: Path) -> list[zipfile.ZipInfo]:
    members = archive.infolist()
    for member in members:
        parts = Path(member.filename).parts
        if member.filename.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            raise ModelError(zip_path, f"unsafe path in the zip: {member.filename!r}")
    return members


def _verify_card(model_dir: Path, zip_path: Path) -> None:
    """Check every file the card lists against its SHA-256 (cards are optional: nnU-Net's own zips have none)."""
    card_path = model_dir / CARD_JSON
    if not card_path.is_file():
        return
    for path, digest in json.loads(card_path.read_text())["files"].items():
        if not (model_dir / path).is_file() or sha256_of(model_dir / path) != digest:
            raise ModelError(zip_path, f"{path} is missing or differs from the model card's checksum")


def install_model(zip_path: str | Path, *, name: str | None = None, force: bool = False) -> Path:
    """Install a model zip as ``name`` (default: the zip's stem) into :func:`models_dir`; returns the model folder.

    The zip's SHA-256 is kept with the model: installing the same zip again
    is a no-op, a different zip under a taken name needs ``force``. The zip
    is checked (safe paths, one model folder of ours, files matching the
    card's checksums) before anything is put in place.
    """
    zip_path = Path(zip_path)
    if not zip_path.is_file():
        raise ModelError(zip_path, "model zip not found")
    name = check_name(zip_path.stem if name is None else name, zip_path)
    digest = sha256_of(zip_path)
    installed = already_installed(name, digest, zip_path, force=force)
    if installed is not None:
        return installed
    with installing(name, {"zip": str(zip_path.resolve()), "sha256": digest}) as staging:
        extract_zip(zip_path, staging)
        _verify_card(model_folder_in(staging), zip_path)
    return model_folder_in(models_dir() / name)


def extract_zip(zip_path: Path, folder: Path) -> None:
    """Unpack a zip into ``folder``; :class:`ModelError` naming the zip if it is unreadable or has unsafe paths."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(folder, _safe_members(archive, zip_path))
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise ModelError(zip_path, f"not a readable zip ({err})") from err


def already_installed(name: str, digest: str, source: Path, *, force: bool = False) -> Path | None:
    """The model folder if the source with SHA-256 ``digest`` is installed as ``name`` already, else ``None``.

    Another model under ``name`` is a :class:`ModelError` unless ``force``
    (then ``None``: it will be replaced).
    """
    target = models_dir() / name
    if not target.is_dir():
        return None
    if installed_digest(target) == digest:
        return model_folder_in(target)
    if not force:
        raise ModelError(source, f"another model is installed as {name!r} ({target}); choose another --name "
                                 f"or replace it with --force")
    return None


@contextmanager
def installing(name: str, record: dict[str, Any]) -> Iterator[Path]:
    """A staging folder to put one model folder (``<Dataset>/<Trainer__Plans__Config>/``) in; it becomes the
    installed model ``name`` when the block succeeds, checked and with ``record`` (its source and SHA-256) as
    ``installed_from.json``. A failing block leaves any model installed under ``name`` untouched."""
    with atomic_folder(models_dir() / name) as staging:
        yield staging
        check_model_dir(model_folder_in(staging))
        write_json(staging / "installed_from.json", record)


def installed_digest(root: Path) -> str | None:
    """The SHA-256 of the zip an installed model came from (``None`` if unknown)."""
    record = root / "installed_from.json"
    return json.loads(record.read_text()).get("sha256") if record.is_file() else None


def installed_models() -> dict[str, Path]:
    """Installed model names -> their model folders."""
    root = models_dir()
    if not root.is_dir():
        return {}
    return {p.name: model_folder_in(p) for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")}


# --- download and resolve ----------------------------------------------------------------------------------------

def split_url(spec: str) -> tuple[str, str]:
    """``URL#sha256=<hex>`` -> (URL, hex digest); :class:`ModelError` without a valid checksum."""
    url, _, fragment = spec.partition("#")
    digest = dict(urllib.parse.parse_qsl(fragment)).get("sha256", "").lower()
    if not _SHA256.match(digest):
        raise ModelError(Path(url), "a model URL needs its SHA-256 checksum: URL#sha256=<64 hex digits>")
    return url, digest


def download(url: str, digest: str) -> Path:
    """The file at ``url`` with SHA-256 ``digest``, from the download cache or fetched into it once.

    A download whose checksum differs is discarded with an error.
    """
    cached = home() / "downloads" / f"{digest}.zip"
    if cached.is_file() and sha256_of(cached) == digest:
        return cached
    with atomic_path(cached) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=60) as response, tmp.open("wb") as out:
                size = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=size, unit="B", unit_scale=True, desc=f"download {Path(url).name}") as bar:
                    for chunk in iter(lambda: response.read(_CHUNK), b""):
                        out.write(chunk)
                        bar.update(len(chunk))
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise ModelError(Path(url), f"download failed ({err})") from err
        got = sha256_of(tmp)
        if got != digest:
            raise ModelError(Path(url), f"checksum mismatch: expected sha256 {digest}, downloaded {got}")
    return cached


def is_url(spec: str) -> bool:
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", spec) is not None


def resolve_model(spec: str | Path) -> Path:
    """The model folder for ``detect -m``: a model folder, a zip, an installed name, or ``URL#sha256=<hex>``.

    Zips and URLs are installed first (once: see :func:`install_model`);
    a URL's model is installed as ``<file stem>-<first 8 hex digits>``.
    """
    text = str(spec)
    if is_url(text):
        url, digest = split_url(text)
        name = check_name(f"{Path(urllib.parse.urlparse(url).path).stem}-{digest[:8]}", Path(url))
        if installed_digest(models_dir() / name) == digest:
            return model_folder_in(models_dir() / name)
        return install_model(download(url, digest), name=name)
    path = Path(spec)
    if path.is_dir():
        return path
    if path.suffix.lower() == ".zip":
        return install_model(path)
    installed = installed_models()
    if text in installed:
        return installed[text]
    known = ", ".join(installed) or "none installed"
    raise ModelError(path, f"no model folder, zip, URL or installed model of that name (installed: {known})")


def model_label(model_dir: Path) -> str:
    """How records name a model: its installed name for installed models, else its folder's path."""
    model_dir = Path(model_dir).resolve()
    root = model_dir.parent.parent
    return root.name if root.parent == models_dir().resolve() else str(model_dir)
