"""Model export to a zip with a model card, install, download cache and ``detect -m`` resolution (nnunet_glacier.field.models)."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from nnunet_glacier.cli import main
from nnunet_glacier.errors import ModelError
from nnunet_glacier.field import models

DATASET = "Dataset506_CaFFeFused"
FOLDER = "nnUNetTrainerGlacier__nnUNetPlans__2d_demo"


#: Installed models and downloads go to a fresh folder, never the user's cache (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("glacier_home")


def fake_model(root: Path, folds=(0, 1)) -> Path:
    """A model folder laid out as nnU-Net writes it (checkpoints are stand-in bytes)."""
    model = root / DATASET / FOLDER
    model.mkdir(parents=True)
    (model / "plans.json").write_text(json.dumps({"configurations": {"2d_demo": {"patch_size": [128, 128]}}}))
    (model / "dataset_fingerprint.json").write_text("{}")
    (model / "dataset.json").write_text(json.dumps({
        "numTraining": 12, "caffe": {"source": "/data/caffe", "tasks": ["fused"], "test_cases": ["a", "b", "c"],
                                     "pixel_size_m": {"x": 20.0, "y": 7.0, "z": 20.0, "a": 6.0}}}))  # "a" is a test case
    for fold in folds:
        (model / f"fold_{fold}" / "validation").mkdir(parents=True)
        (model / f"fold_{fold}" / "checkpoint_final.pth").write_bytes(bytes([fold]) * 1000)
        (model / f"fold_{fold}" / "checkpoint_best.pth").write_bytes(b"not exported")
        (model / f"fold_{fold}" / "validation" / "summary.json").write_text(json.dumps({
            "foreground_mean": {"Dice": 0.5 + fold / 10},
            "metric_per_case": [{"reference_file": f"/gt/case_{fold}_{k}.png"} for k in range(3)]}))
    return model


def test_export_follows_nnunet_layout_and_writes_a_model_card(tmp_path):
    model = fake_model(tmp_path / "results")
    card = models.export_model(model, tmp_path / "fused_demo.zip")
    with zipfile.ZipFile(tmp_path / "fused_demo.zip") as archive:
        names = set(archive.namelist())
        stored_card = json.loads(archive.read(f"{DATASET}/{FOLDER}/model_card.json"))
    prefix = f"{DATASET}/{FOLDER}/"
    assert {prefix + n for n in ("plans.json", "dataset.json", "dataset_fingerprint.json", "model_card.json",
                                 "model_card.md", "fold_0/checkpoint_final.pth", "fold_1/validation/summary.json")} \
        <= names
    assert not any("checkpoint_best" in n for n in names)  # nnU-Net's export: final checkpoints only
    assert stored_card == card and card["name"] == "fused_demo" and card["folds"] == [0, 1]
    assert card["experiment"] == {"name": "fused", "title": card["experiment"]["title"], "profile": "demo"}
    assert card["tasks"] == ["fused"] and card["training_data"]["n_training_cases"] == 12
    assert card["validation"]["1"] == {"dice_foreground_mean": 0.6, "cases": ["case_1_0", "case_1_1", "case_1_2"]}
    assert card["pixel_size_m"] == {"min": 7.0, "median": 20.0, "max": 20.0, "values": [7.0, 20.0]}
    assert card["patch_size"] == [128, 128] and {"nnunetv2", "torch", "python"} <= set(card["software"])
    assert card["files"]["fold_0/checkpoint_final.pth"] == models.sha256_of(model / "fold_0/checkpoint_final.pth")


def test_install_extracts_into_the_model_store_once(tmp_path, glacier_home):
    models.export_model(fake_model(tmp_path / "results"), tmp_path / "fused_demo.zip", folds=[1])
    folder = models.install_model(tmp_path / "fused_demo.zip")
    assert folder == glacier_home / "models" / "fused_demo" / DATASET / FOLDER
    assert models.trained_folds(folder) == [1] and (folder / "model_card.md").is_file()
    stamp = (folder / "fold_1" / "checkpoint_final.pth").stat().st_mtime_ns
    assert models.install_model(tmp_path / "fused_demo.zip") == folder  # the same zip: nothing to do
    assert (folder / "fold_1" / "checkpoint_final.pth").stat().st_mtime_ns == stamp
    assert models.installed_models() == {"fused_demo": folder}
    assert models.resolve_model("fused_demo") == folder
    assert models.model_label(folder) == "fused_demo"


def test_another_zip_under_a_taken_name_needs_force(tmp_path):
    models.export_model(fake_model(tmp_path / "a"), tmp_path / "model.zip", folds=[0])
    models.install_model(tmp_path / "model.zip")
    models.export_model(fake_model(tmp_path / "b"), tmp_path / "other" / "model.zip", folds=[0, 1])
    with pytest.raises(ModelError, match="another model is installed as 'model'.*--force"):
        models.install_model(tmp_path / "other" / "model.zip")
    assert models.trained_folds(models.install_model(tmp_path / "other" / "model.zip", force=True)) == [0, 1]


def test_corrupt_or_unsafe_zips_install_nothing(tmp_path, glacier_home):
    models.export_model(fake_model(tmp_path / "results"), tmp_path / "good.zip")
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(tmp_path / "good.zip") as source, zipfile.ZipFile(tampered, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            target.writestr(item, b"changed" if item.filename.endswith("fold_0/checkpoint_final.pth") else data)
    with pytest.raises(ModelError, match="fold_0/checkpoint_final.pth is missing or differs from the model card"):
        models.install_model(tampered)
    unsafe = tmp_path / "unsafe.zip"
    with zipfile.ZipFile(unsafe, "w") as archive:
        archive.writestr("../escape.txt", "x")
    with pytest.raises(ModelError, match="unsafe path"):
        models.install_model(unsafe)
    (tmp_path / "truncated.zip").write_bytes((tmp_path / "good.zip").read_bytes()[:200])
    with pytest.raises(ModelError, match=r"truncated\.zip: not a readable zip"):
        models.install_model(tmp_path / "truncated.zip")
    assert not (tmp_path / "escape.txt").exists()
    assert [p.name for p in (glacier_home / "models").iterdir()] == []  # no staging left behind


def test_url_needs_a_checksum_and_is_downloaded_once(tmp_path, glacier_home):
    models.export_model(fake_model(tmp_path / "results"), tmp_path / "fused_demo.zip")
    digest = models.sha256_of(tmp_path / "fused_demo.zip")
    url = (tmp_path / "fused_demo.zip").as_uri()
    with pytest.raises(ModelError, match="needs its SHA-256"):
        models.resolve_model(url)
    with pytest.raises(ModelError, match="checksum mismatch"):
        models.resolve_model(f"{url}#sha256={'0' * 64}")
    assert not list((glacier_home / "downloads").glob("*.zip"))
    folder = models.resolve_model(f"{url}#sha256={digest}")
    assert folder.parent.parent.name == f"fused_demo-{digest[:8]}"
    assert (glacier_home / "downloads" / f"{digest}.zip").is_file()
    (tmp_path / "fused_demo.zip").unlink()  # the source is gone: the installed model is used, nothing fetched
    assert models.resolve_model(f"{url}#sha256={digest}") == folder


def test_resolve_names_what_it_could_not_find(tmp_path):
    with pytest.raises(ModelError, match=r"no model folder, zip, URL or installed model.*none installed"):
        models.resolve_model("helheim_v2")


def test_cli_export_install_list(tmp_path, capsys):
    model = fake_model(tmp_path / "results")
    assert main(["model", "export", str(model), str(tmp_path / "m.zip"), "--folds", "0"]) == 0
    assert main(["model", "install", str(tmp_path / "m.zip"), "--name", "helheim"]) == 0
    assert main(["model", "list"]) == 0
    out = capsys.readouterr().out
    assert "helheim" in out and "fused" in out
    assert main(["model", "export", str(tmp_path / "missing"), str(tmp_path / "x.zip")]) == 1
    assert not (tmp_path / "x.zip").exists()


def test_a_model_trained_elsewhere_carries_its_experiment_and_provenance_in_the_card(tmp_path):
    model = fake_model(tmp_path / "results", folds=(0,))
    dataset = json.loads((model / "dataset.json").read_text())
    imported = {"format": "nnU-Net v1", "source": "/downloads/model.zip", "known": ["trainer nnUNetTrainerV2"],
                "not_known": ["validation scores"]}
    dataset["caffe"].update(experiment={"name": "fused", "title": "Fused labels", "profile": None},
                            imported_from=imported)
    (model / "dataset.json").write_text(json.dumps(dataset))
    renamed = model.parent / "nnUNetTrainer__nnUNetPlansFromV1__2d"  # not one of our experiments' folders
    model.rename(renamed)
    card = models.write_model_card(renamed, "imported", [0])
    assert json.loads((renamed / models.CARD_JSON).read_text()) == card
    assert card["experiment"]["name"] == "fused" and card["imported_from"] == imported
    markdown = (renamed / models.CARD_MARKDOWN).read_text()
    assert "- experiment: fused (Fused labels, trained outside nnunet_glacier)" in markdown
    assert "- imported from nnU-Net v1: /downloads/model.zip" in markdown
    assert "  - trainer nnUNetTrainerV2" in markdown and "  - validation scores" in markdown
    assert set(card["files"]) == {"plans.json", "dataset.json", "dataset_fingerprint.json",
                                  "fold_0/checkpoint_final.pth", "fold_0/validation/summary.json"}
