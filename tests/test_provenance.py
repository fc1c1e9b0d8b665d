"""Made-from records, file stamps, locks and the clean-up of a killed write's temporaries."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from nnunet_glacier.utilities import atomic, locks, provenance


def test_a_stamp_survives_a_touch_but_not_a_replaced_content(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(b"12345")
    stamp = provenance.FileStamp.of(path)
    os.utime(path, ns=(0, stamp.mtime_ns + 10**9))  # touched, same content
    assert stamp.still_matches(path)
    path.write_bytes(b"54321")  # same size, other content
    assert not stamp.still_matches(path)
    path.unlink()
    assert not stamp.still_matches(path)


def test_a_record_is_current_only_for_the_same_settings_and_files(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("a")
    b.write_text("b")
    record = provenance.made_from({"pixel_size": 75.0, "folds": (0, 1)}, [a, b], root=tmp_path)
    assert set(record["inputs"]) == {"a.txt", "b.txt"}
    assert provenance.is_current(record, {"pixel_size": 75.0, "folds": [0, 1]}, [b, a], root=tmp_path)
    assert not provenance.is_current(record, {"pixel_size": 50.0, "folds": [0, 1]}, [a, b], root=tmp_path)
    assert not provenance.is_current(record, {"pixel_size": 75.0, "folds": [0, 1]}, [a], root=tmp_path)
    b.write_text("B")
    assert not provenance.is_current(record, {"pixel_size": 75.0, "folds": [0, 1]}, [a, b], root=tmp_path)
    assert not provenance.is_current(None, {}, [])


def test_digest_is_stable_and_order_free():
    assert provenance.digest({"a": 1, "b": [1, 2]}) == provenance.digest({"b": (1, 2), "a": 1})
    assert provenance.digest({"a": 1}) != provenance.digest({"a": 2})


def test_a_records_content_digest_ignores_file_times_but_not_contents(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("a")
    record = provenance.made_from({"k": 1}, [path], root=tmp_path)
    os.utime(path, ns=(0, 10**9))
    rewritten = provenance.made_from({"k": 1}, [path], root=tmp_path)
    assert rewritten["inputs"] != record["inputs"]  # another time ...
    assert provenance.content_digest(rewritten) == provenance.content_digest(record)  # ... same content
    path.write_text("b")
    assert provenance.content_digest(provenance.made_from({"k": 1}, [path], root=tmp_path)) \
        != provenance.content_digest(record)
    assert provenance.content_digest(None) is None


def test_a_missing_or_corrupt_record_reads_as_none(tmp_path):
    assert provenance.read_record(tmp_path / "none.json") is None
    (tmp_path / "bad.json").write_text("{cut")
    assert provenance.read_record(tmp_path / "bad.json") is None


def test_a_lock_makes_the_second_holder_wait(tmp_path):
    target = tmp_path / "scene.json"
    order = []

    def second():
        with locks.exclusive(target):
            order.append("second")

    with locks.exclusive(target) as held:
        assert held
        other = threading.Thread(target=second)
        # flock locks are per open file: a thread opening the file anew waits like another process
        other.start()
        time.sleep(0.3)
        order.append("first")
    other.join(5)
    assert order == ["first", "second"]


def test_a_lock_held_elsewhere_is_reported_without_waiting(tmp_path):
    target = tmp_path / "step.json"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from nnunet_glacier.utilities import locks\n"
        f"with locks.exclusive({str(target)!r}):\n"
        "    print('held', flush=True); time.sleep(30)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with locks.exclusive(target, wait=False) as held:
            assert held is False
    finally:
        holder.kill()
        holder.wait(10)
    with locks.exclusive(target, wait=False) as held:  # the killed holder's lock went with it
        assert held is True


def test_a_killed_writers_temporaries_are_found_and_removed_but_a_live_ones_are_kept(tmp_path):
    writer = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from nnunet_glacier.utilities.atomic import atomic_path\n"
        f"with atomic_path({str(tmp_path / 'mask.png')!r}) as tmp:\n"
        "    tmp.write_bytes(b'half'); print(tmp, flush=True); time.sleep(30)")], stdout=subprocess.PIPE, text=True)
    tmp = writer.stdout.readline().strip()
    assert os.path.exists(tmp)
    assert atomic.stale_temporaries(tmp_path) == []  # its writer is alive
    writer.kill()
    writer.wait(10)
    (tmp_path / "done.png").write_bytes(b"kept")
    assert [str(p) for p in atomic.remove_stale_temporaries(tmp_path)] == [tmp]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["done.png"]


def test_atomic_folder_keeps_the_old_folder_when_the_block_fails(tmp_path):
    folder = tmp_path / "dataset"
    folder.mkdir()
    (folder / "old.txt").write_text("good")
    try:
        with atomic.atomic_folder(folder) as new:
            (new / "new.txt").write_text("half")
            raise RuntimeError("export failed")
    except RuntimeError:
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset"]
    assert [p.name for p in folder.iterdir()] == ["old.txt"]
    with atomic.atomic_folder(folder) as new:
        (new / "new.txt").write_text("complete")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset"]
    assert [p.name for p in folder.iterdir()] == ["new.txt"]
