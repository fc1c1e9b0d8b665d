"""The command line's own checks: options refused at parse time (exit 2, no traceback) and operating-system
errors reported as one line naming the path (exit 1)."""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nnunet_glacier.cli import build_parser, main
from nnunet_glacier.data.synthetic import generate_caffe
from nnunet_glacier.errors import InputError, os_error_message, problem_of

#: The required arguments of each command that takes a checked option (the files need not exist: parsing fails
#: before any is opened).
COMMANDS = {
    "export": ["export", "--data", "d", "--experiment", "fused"],
    "evaluate": ["evaluate", "--predictions", "p", "--data", "d"],
    "detect": ["detect", "-m", "m", "-i", "i", "-o", "o"],
    "predict": ["predict", "-m", "m", "-i", "i", "-o", "o"],
    "reproduce": ["reproduce", "--data", "d"],
    "demo": ["demo"],
    "train": ["train", "--experiment", "fused", "--fold", "0"],
    "plan": ["plan", "--experiment", "fused"],
    "retreat": ["retreat", "out"],
    "plot overlays": ["plot", "overlays", "--data", "d", "--predictions", "p", "--out", "o"],
    "slurm": ["slurm", "--data", "d", "--out", "o"],
    "synth": ["synth", "--out", "o"],
}

BAD_SIZES = ["-75", "0", "nan", "inf", "abc"]
BAD_COUNTS = ["0", "-1", "1.5", "abc"]

#: (command, option, bad values): every checked option of every command.
BAD_OPTIONS = [
    *((command, "--pixel-size", BAD_SIZES) for command in ("export", "evaluate", "detect", "reproduce", "demo")),
    ("detect", "--default-pixel-size", BAD_SIZES),
    ("retreat", "--box-width", BAD_SIZES),
    *((command, "--step-size", ["0", "1.5", "-0.1", "nan"]) for command in ("detect", "predict")),
    ("detect", "--min-length-m", ["nan", "-5", "inf", "abc"]),
    ("detect", "--length-factor", ["0.5", "nan"]),
    ("detect", "--max-disagreement", ["-0.1", "1.5", "nan"]),
    *((command, "--workers", BAD_COUNTS) for command in ("export", "evaluate")),
    ("plot overlays", "--limit", BAD_COUNTS),
    ("plan", "--processes", BAD_COUNTS),
    *((command, "--max-epochs", BAD_COUNTS) for command in ("train", "reproduce", "demo")),
    *((command, "--iterations", BAD_COUNTS) for command in ("train", "reproduce", "demo")),
    ("train", "--val-iterations", BAD_COUNTS),
    *(("demo", option, BAD_COUNTS) for option in ("--n-train", "--n-test")),
    *(("synth", option, ["-1", "abc"]) for option in ("--n-train", "--n-test", "--seed")),
    ("demo", "--size", ["31", "-1", "abc"]),
    *(("slurm", option, BAD_COUNTS) for option in ("--cpus", "--memory", "--train-hours")),
    ("slurm", "--gpus", ["-1", "abc"]),
]


def _option_cases() -> list:
    return [pytest.param(command, option, value, id=f"{command}{option}={value}")
            for command, option, values in BAD_OPTIONS for value in values]


def _exit_code(argv: list[str]) -> int:
    """``main(argv)``'s exit code, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as done:
        return done.code


@pytest.mark.parametrize("command, option, value", _option_cases())
def test_bad_option_values_are_usage_errors(command, option, value, capsys):
    assert _exit_code([*COMMANDS[command], f"{option}={value}"]) == 2
    err = capsys.readouterr().err
    assert f"argument {option}: must be" in err and repr(value) in err
    assert err.startswith("usage: ") and "Traceback" not in err


def _parsers(parser: argparse.ArgumentParser, name: str = "nnunet-glacier") -> dict[str, argparse.ArgumentParser]:
    """Every (sub-)command's parser by its command line, e.g. ``nnunet-glacier plot overlays``."""
    found = {name: parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                found.update(_parsers(sub, f"{name} {sub_name}"))
    return found


#: Numeric options still read with a bare ``int``: checked by the command itself (synth's size by
#: ``generate_caffe``, exit 2).
UNCHECKED = {("nnunet-glacier synth", "--size")}


def test_no_numeric_option_is_read_unchecked():
    unchecked = {(name, action.option_strings[-1]) for name, parser in _parsers(build_parser()).items()
                 for action in parser._actions if action.type in (int, float) and action.option_strings}
    assert unchecked <= UNCHECKED


def test_synthetic_scenes_too_small_are_a_usage_error(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path / "small"), "--size", "64", "31"]) == 2
    assert capsys.readouterr().err == "error: scenes need at least 32 x 32 pixels, got 64 x 31\n"
    assert not (tmp_path / "small").exists()


def test_unknown_extra_routes_are_a_usage_error_checked_by_evaluate(capsys):
    assert _exit_code([*COMMANDS["evaluate"], "--extra-routes", "fused_front", "fused_wide"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: ") and "Traceback" not in err
    assert "argument --extra-routes: unknown extra route(s) fused_wide; extra routes are fused_split" in err
    routes = build_parser().parse_args([*COMMANDS["evaluate"], "--extra-routes", "fused_front", "fused_split"])
    assert routes.extra_routes == ["fused_front", "fused_split"]


def test_retreat_takes_a_box_or_a_centre_line_not_both(capsys):
    assert _exit_code([*COMMANDS["retreat"], "--box", "b.csv", "--centreline", "c.csv", "--box-width", "5"]) == 2
    err = capsys.readouterr().err
    assert "argument --centreline: not allowed with argument --box" in err and "Traceback" not in err


@pytest.mark.parametrize("argv, dest, expected", [
    (["evaluate", "--predictions", "p", "--data", "d", "--pixel-size", "6.5"], "pixel_size", 6.5),
    (["detect", "-m", "m", "-i", "i", "-o", "o", "--step-size", "1"], "step_size", 1.0),
    (["detect", "-m", "m", "-i", "i", "-o", "o", "--min-length-m", "0"], "min_length_m", 0.0),
    (["detect", "-m", "m", "-i", "i", "-o", "o", "--max-disagreement", "0"], "max_disagreement", 0.0),
    (["detect", "-m", "m", "-i", "i", "-o", "o", "--max-disagreement", "1"], "max_disagreement", 1.0),
    (["detect", "-m", "m", "-i", "i", "-o", "o", "--length-factor", "1"], "length_factor", 1.0),
    (["detect", "-m", "m", "-i", "i", "-o", "o"], "device", "auto"),
    (["plot", "overlays", "--data", "d", "--predictions", "p", "--out", "o", "--limit", "1"], "limit", 1),
    (["slurm", "--data", "d", "--out", "o", "--gpus", "0"], "gpus", 0),
    (["synth", "--out", "o", "--n-test", "0"], "n_test", 0),
    (["demo", "--size", "32"], "size", 32),
    (["demo", "--device", "cpu", "--max-epochs", "1"], "max_epochs", 1),
])
def test_values_at_the_limits_are_accepted(argv, dest, expected):
    assert getattr(build_parser().parse_args(argv), dest) == expected


@pytest.mark.parametrize("command", ["detect", "predict", "train", "demo"])
def test_cuda_without_a_gpu_is_a_usage_error(command, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    assert _exit_code([*COMMANDS[command], "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "argument --device: cuda asked for, but torch finds no CUDA GPU" in err and "Traceback" not in err


def test_console_exit_code_of_a_bad_option_is_2(tmp_path):
    done = subprocess.run([sys.executable, "-m", "nnunet_glacier.cli", *COMMANDS["evaluate"], "--pixel-size", "-1"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2
    assert "argument --pixel-size: must be a positive number, got '-1'" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


# --- operating-system errors --------------------------------------------------------------------------------------

@pytest.mark.parametrize("where, reason", [("file", "File exists"), ("file/sub", "Not a directory")])
def test_a_file_where_a_folder_is_expected_is_one_error_line(tmp_path, capsys, where, reason):
    (tmp_path / "file").write_text("not a folder")
    out = tmp_path / where
    assert main(["synth", "--out", str(out), "--n-train", "1", "--n-test", "0", "--size", "32", "32"]) == 1
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [f"error: {out}: {reason}"]
    assert captured.out == ""


def _labels_as_predictions(tmp_path: Path) -> tuple[Path, Path]:
    """A CaFFe root with one 32 x 32 px test scene and a predictions folder holding its zone label."""
    root = tmp_path / "caffe"
    generate_caffe(root, n_train=0, n_test=1, size=(32, 32))
    predictions = tmp_path / "predictions"
    predictions.mkdir()
    for label in (root / "zones" / "test").glob("*.png"):
        shutil.copy(label, predictions / label.name)
    return root, predictions


def test_macos_metadata_in_the_data_is_one_warning_line(tmp_path, capsys):
    root, predictions = _labels_as_predictions(tmp_path)
    (image,) = (root / "sar_images" / "test").glob("*.png")
    metadata = image.with_name(f"._{image.name}")
    metadata.write_bytes(b"AppleDouble")
    assert main(["evaluate", "--predictions", str(predictions), "--data", str(root), "--out", str(tmp_path / "ev"),
                 "--pixel-size", "20", "--workers", "1"]) == 0
    err = capsys.readouterr().err
    assert f"warning: {metadata}: macOS metadata file (AppleDouble ._ file), skipped\n" in err
    assert (tmp_path / "ev" / "summary.json").is_file()


def test_evaluate_into_a_file_is_one_error_line(tmp_path, capsys):
    root, predictions = _labels_as_predictions(tmp_path)
    out = tmp_path / "summary"
    out.write_text("a file")
    assert main(["evaluate", "--predictions", str(predictions), "--data", str(root), "--out", str(out),
                 "--pixel-size", "20", "--workers", "1"]) == 1
    err = capsys.readouterr().err
    # evaluate leaves its progress bar open when a scene fails: the message may share the bar's line
    assert err.count("error") == 1 and f"error: {out}: File exists\n" in err
    assert "Traceback" not in err
    assert out.read_text() == "a file"


def test_os_error_message_names_the_path_once(tmp_path):
    missing = tmp_path / "missing"
    with pytest.raises(OSError) as error:
        os.replace(missing, tmp_path / "target")
    assert os_error_message(error.value) == f"{missing} -> {tmp_path / 'target'}: No such file or directory"
    with pytest.raises(OSError) as error:
        missing.read_text()
    assert os_error_message(error.value) == f"{missing}: No such file or directory"
    assert os_error_message(OSError("no file involved")) == "no file involved"


def test_problem_of_leaves_out_the_path_the_line_names_already(tmp_path):
    scene = tmp_path / "a2" / "x.tif"
    assert problem_of(InputError(scene, "unreadable"), scene) == "unreadable"
    assert problem_of(InputError(str(scene), "unreadable"), scene) == "unreadable"
    assert problem_of(InputError(tmp_path / "other.tif", "bad"), scene) == f"{tmp_path / 'other.tif'}: bad"
    assert problem_of(PermissionError(13, "Permission denied", str(tmp_path / "out")), scene) == \
        f"{tmp_path / 'out'}: Permission denied"
    assert problem_of(ValueError("pixel size must be positive"), scene) == "pixel size must be positive"
