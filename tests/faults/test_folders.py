"""Folders memevae did not make: it never overwrites or deletes files it did not write, and every
path it cannot use gets one line before anything is touched.

Covered: `train --out` on a folder of someone else's files (with hidden temporary-looking files),
an empty existing folder, the leftover clean-up outside runs, `--out` paths that cannot be used
(a dangling symbolic link, a file, a name too long, a path below a file) for train and translate,
`translate --out` on a file that is not an image, `train --resume` on a read-only run, and
`--tensorboard` without the tensorboard package.
"""

import json
import os
import shutil
import stat
import sys

import pytest

from memevae.cli import main
from memevae.training.rundir import MARKER, RunDir, RunError, check_folder, folder_kind, earlier_run, results_lock

from test_faults import CLI_RUN, fit, single_thread


@pytest.fixture(scope="module")
def run_path(tmp_path_factory):
    """A one-epoch run (copied by the tests that change it)."""
    with single_thread():
        path = tmp_path_factory.mktemp("trained") / "run"
        fit(path, epochs=1)
        return path


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("memevae: error: ") and "Traceback" not in err, err
    return err


def snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def read_only(monkeypatch, folder):
    """Make ``folder`` and everything in it read-only for this process. Permission bits do not bind
    root, so there ``os.access`` answers as it does for any other user of such a folder."""
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    if os.geteuid() == 0:
        real = os.access

        def access(path, mode, **options):
            if mode & os.W_OK and not os.stat(path).st_mode & stat.S_IWUSR:
                return False
            return real(path, mode, **options)

        monkeypatch.setattr(os, "access", access)


# -- folders memevae did not make ------------------------------------------------------------


def test_a_folder_of_other_files_is_refused_before_anything_is_touched(tmp_path, capsys):
    out = tmp_path / "mine"
    (out / "figures").mkdir(parents=True)
    (out / "metrics.jsonl").write_text('{"my": "numbers"}\n')
    (out / "figures" / "curves.png").write_bytes(b"my figure")
    (out / ".x.tmp").write_text("my hidden file")
    (out / "figures" / ".y.tmp").write_text("another")
    before = snapshot(out)
    assert main(["train", "--out", str(out), *CLI_RUN]) == 1
    err = one_line(capsys)
    assert f"--out {out} holds files memevae did not write (.x.tmp, figures, metrics.jsonl); memevae writes only into a " \
           "new or empty folder or one it made: choose another --out" in err
    assert snapshot(out) == before and sorted(p.name for p in out.iterdir()) == [".x.tmp", "figures", "metrics.jsonl"]


def test_an_empty_folder_becomes_a_marked_run_and_a_run_is_still_refused(tmp_path, capsys):
    out = tmp_path / "empty"
    out.mkdir()
    assert main(["train", "--out", str(out), *CLI_RUN, "--epochs", "1"]) == 0
    capsys.readouterr()
    assert folder_kind(out) == "run" and json.loads((out / MARKER).read_text())["kind"] == "run"
    assert main(["train", "--out", str(out), *CLI_RUN]) == 1
    assert "already holds a run; continue it with --resume or choose another --out" in one_line(capsys)


def test_an_empty_folder_refused_later_is_left_empty(tmp_path, capsys, monkeypatch):
    out = tmp_path / "empty"
    out.mkdir()
    monkeypatch.setattr("memevae.runs._fit", lambda *args: (_ for _ in ()).throw(RunError("refused while loading")))
    assert main(["train", "--out", str(out), *CLI_RUN]) == 1
    assert "refused while loading" in one_line(capsys)
    assert out.is_dir() and not list(out.iterdir())  # neither the lock nor the marker stays behind


def test_runs_of_earlier_versions_are_known_by_their_config(tmp_path, run_path, capsys):
    old = tmp_path / "old"
    shutil.copytree(run_path, old)
    (old / MARKER).unlink()
    (old / "checkpoints" / ".last.pt.abcd1234.tmp").write_bytes(b"half a checkpoint")
    assert check_folder(old, "run", recognise=earlier_run)
    assert main(["train", "--out", str(old), "--resume", "--epochs", "2", "--quiet"]) == 0
    assert not list(old.rglob("*.tmp"))  # its own leftovers are cleaned up
    stopped = tmp_path / "stopped"  # an earlier memevae stopped while loading data: only its lock is there
    (stopped / "checkpoints").mkdir(parents=True)
    (stopped / ".lock").write_text("process 12 on host (memevae, since 2025-01-01T10:00:00)\n")
    assert check_folder(stopped, "run", recognise=earlier_run) and RunDir(stopped).made_by_memevae()
    (stopped / ".lock").write_text("my own lock file\n")
    with pytest.raises(RunError, match="holds files memevae did not write"):
        check_folder(stopped, "run", recognise=earlier_run)


def test_leftovers_are_removed_only_in_runs_memevae_made(tmp_path, run_path):
    foreign = tmp_path / "foreign"
    (foreign / "checkpoints").mkdir(parents=True)
    (foreign / ".notes.tmp").write_text("mine")
    (foreign / "checkpoints" / ".weights.tmp").write_text("mine too")
    assert RunDir(foreign).remove_leftovers() == []
    assert (foreign / ".notes.tmp").exists() and (foreign / "checkpoints" / ".weights.tmp").exists()
    run = tmp_path / "run"
    shutil.copytree(run_path, run)
    (run / "checkpoints" / ".last.pt.abcd1234.tmp").write_bytes(b"half a checkpoint")
    writing = run / "evaluation" / ".metrics.json.abcd1234.tmp"  # an evaluation writing its results right now
    writing.parent.mkdir()
    writing.write_text("{")
    with results_lock(writing.parent):
        assert RunDir(run).remove_leftovers() == [run / "checkpoints" / ".last.pt.abcd1234.tmp"]
    assert writing.exists() and RunDir(run).remove_leftovers() == [writing]


def test_a_folder_made_for_something_else_is_refused(tmp_path, capsys):
    out = tmp_path / "results"
    out.mkdir()
    (out / MARKER).write_text(json.dumps({"kind": "evaluation"}))
    (out / "metrics.json").write_text("{}")
    assert main(["train", "--out", str(out), *CLI_RUN]) == 1
    assert "is the evaluation folder memevae made there, so it cannot hold run outputs" in one_line(capsys)


# -- paths that cannot be used ---------------------------------------------------------------


def bad_out(kind, tmp_path):
    """An --out of ``kind`` and the words of the line that refuses it."""
    if kind == "dangling link":
        link = tmp_path / "link"
        link.symlink_to(tmp_path / "gone")
        return link, f"is a symbolic link to {tmp_path / 'gone'}, which does not exist"
    if kind == "file":
        path = tmp_path / "notes.txt"
        path.write_text("mine")
        return path, "is a file, not a folder"
    if kind == "name too long":
        return tmp_path / ("x" * 300), "is too long for its file system (at most 2"
    if kind == "below a file":
        (tmp_path / "notes.txt").write_text("mine")
        return tmp_path / "notes.txt" / "run", f"lies inside {tmp_path / 'notes.txt'}, which is a file"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["dangling link", "file", "name too long", "below a file"])
def test_train_out_that_cannot_be_used(tmp_path, capsys, kind):
    out, words = bad_out(kind, tmp_path)
    before = snapshot(tmp_path)
    assert main(["train", "--out", str(out), *CLI_RUN]) == 1
    assert words in one_line(capsys)
    assert snapshot(tmp_path) == before and os.path.lexists(out) == (kind in ("dangling link", "file"))


@pytest.mark.parametrize("kind", ["dangling link", "name too long", "below a file", "folder", "not an image"])
def test_translate_out_that_cannot_be_used(tmp_path, run_path, capsys, kind):
    if kind == "folder":
        out, words = tmp_path, "is a folder; give a file name, e.g."
    elif kind == "not an image":
        out, words = tmp_path / "config.json", "is an existing file that is not a PNG image"
        out.write_text('{"mine": 1}')
    else:
        out, words = bad_out(kind, tmp_path)
    before = snapshot(tmp_path)
    assert main(["translate", str(run_path), "--from", "mnist", "--to", "textured", "--out", str(out)]) == 1
    assert words in one_line(capsys)
    assert snapshot(tmp_path) == before


def test_translate_replaces_an_image_it_drew(tmp_path, run_path, capsys):
    out = tmp_path / "grid.png"
    command = ["translate", str(run_path), "--from", "mnist", "--to", "textured", "--out", str(out), "--count", "2"]
    assert main(command) == 0
    first = out.read_bytes()
    assert main([*command[:-2], "--count", "3"]) == 0 and out.read_bytes() != first
    assert main(command[:6] + ["--out", str(tmp_path / ("g" * 250 + ".png"))]) == 1  # its temporary name would be too long
    assert "is too long for its file system (at most 241 bytes per name and 4082 for the whole path" in capsys.readouterr().err


# -- read-only runs, missing packages ---------------------------------------------------------


def test_resume_on_a_read_only_run(tmp_path, run_path, capsys, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(run_path, run)
    before = snapshot(run)
    read_only(monkeypatch, run)
    assert main(["train", "--out", str(run), "--resume", "--epochs", "2", "--quiet"]) == 1
    err = one_line(capsys)
    assert f"cannot write into {run} (this user may not write into it); make it writable, or copy the run" in err
    assert snapshot(run) == before


def test_tensorboard_without_its_package_leaves_no_folder(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    assert main(["train", "--out", str(out), *CLI_RUN, "--tensorboard"]) == 1
    assert 'TensorBoard logging needs the tensorboard package: pip install "memevae[tensorboard]"' in one_line(capsys)
    assert not out.exists()
    assert main(["train", "--out", str(out), *CLI_RUN, "--epochs", "1"]) == 0  # the plain rerun starts the run
