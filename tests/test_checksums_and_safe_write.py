"""Checkpoints in data/ carry checksums; writes never follow links or leave half a file (the reliability issue)."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

from course_kit import runtime
from course_kit.checkpoint_io import CheckpointError, read_checksums, record_checksums, sha256_of
from course_kit.safe_write import DiskFullError, UnsafeWriteError, replace_atomic, write_text_atomic

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"


def test_every_file_in_data_has_its_recorded_checksum():
    manifest = read_checksums(DATA)
    files = {p.relative_to(DATA).as_posix() for p in DATA.rglob("*") if p.is_file()} - {"README.md", "checksums.json"}
    missing = sorted(files - set(manifest))
    assert not missing, f"files in data/ with no checksum: {missing}; run `course-kit build-data --record-checksums`"
    wrong = sorted(k for k, v in manifest.items() if (DATA / k).exists() and sha256_of(DATA / k) != v)
    assert not wrong, f"files in data/ that differ from their checksum: {wrong}"


@pytest.fixture
def data_copy(tmp_path, monkeypatch):
    root = tmp_path / "data"
    shutil.copytree(DATA, root)
    monkeypatch.setattr(runtime, "DATA_DIR", root)
    return root


def _flip_bytes(file: Path, at: int = -200, n: int = 64):
    data = bytearray(file.read_bytes())
    for k in range(n):
        data[at + k] ^= 0xFF
    file.write_bytes(bytes(data))


def test_a_flipped_byte_in_the_weights_is_refused_in_one_line(data_copy):
    from course_kit.diffusion.portrait_classifier import load_classifier

    _flip_bytes(data_copy / "portrait_classifier" / "model.safetensors")
    with pytest.raises(CheckpointError) as info:
        load_classifier(data_copy / "portrait_classifier")
    message = str(info.value)
    assert "\n" not in message and "SHA-256" in message and "course-kit build-data portrait_classifier" in message


def test_a_shape_preserving_config_edit_is_refused(data_copy):
    from course_kit.diffusion.portrait_classifier import load_classifier

    config = data_copy / "portrait_classifier" / "config.json"
    values = json.loads(config.read_text())
    key = next(k for k, v in values.items() if isinstance(v, float))
    values[key] = values[key] * 0.5 + 0.01
    config.write_text(json.dumps(values))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_classifier(data_copy / "portrait_classifier")


@pytest.mark.parametrize("n_layer", [2, 4])
def test_the_teacher_loads_strictly(data_copy, n_layer):
    from course_kit.preference.rlaif import load_teacher

    folder = data_copy / "rlaif_teacher"
    config = json.loads((folder / "config.json").read_text())
    config["n_layer"] = n_layer
    (folder / "config.json").write_text(json.dumps(config))
    record_checksums(folder, data_copy)  # even with a matching checksum, a changed layer count is refused
    with pytest.raises(CheckpointError, match="rlaif_teacher"):
        load_teacher(folder)


def test_the_teacher_never_falls_back_to_a_pickle(data_copy):
    from course_kit.preference.rlaif import load_teacher

    (data_copy / "rlaif_teacher" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="build-data rlaif_teacher"):
        load_teacher(data_copy / "rlaif_teacher")


def test_atomic_writes_refuse_links_and_leave_nothing_behind(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "evals.json"
    link.symlink_to(victim)
    with pytest.raises(UnsafeWriteError, match="symbolic link"):
        write_text_atomic(link, "overwrite")
    assert victim.read_text() == "keep me"
    write_text_atomic(tmp_path / "fresh.json", "{}")
    assert (tmp_path / "fresh.json").read_text() == "{}"
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_full_disk_is_reported_as_such_and_cleaned_up(tmp_path):
    with pytest.raises(DiskFullError, match="disk is full"):
        with replace_atomic(tmp_path / "state.bin") as tmp:
            tmp.write_bytes(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert list(tmp_path.iterdir()) == []
