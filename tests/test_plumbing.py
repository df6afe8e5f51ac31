"""plumbing.py: files are written whole or not at all, and when one cannot be written,
one line says why, before anything is made."""
import os

import pytest

import plumbing
from helpers import fake_training
from history import History
from plumbing import UserError
from tensorflowvisu import Dashboard, Movie


def test_unwritable_targets_give_user_errors_and_leave_nothing_behind(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match="cannot write"):
        History("x").save(blocker / "run.json")
    with pytest.raises(UserError, match="cannot write"):
        Dashboard("x", live=False).save(blocker / "run.json")
    for png in (blocker / "dash.png", tmp_path):  # (a folder)
        dashboard = Dashboard("x", live=False, png=png)
        fake_training(dashboard, 20)
        with pytest.raises(UserError, match="cannot write"):
            dashboard.save()
    for movie in (blocker / "run.gif", tmp_path, tmp_path / "run.avi"):
        with pytest.raises(UserError):
            Movie(movie)
        with pytest.raises(UserError, match="cannot record the movie"):
            Dashboard("x", live=False, movie=movie)
    assert sorted(os.listdir(tmp_path)) == ["a_file"]


def test_cannot_write_says_why_and_creates_nothing(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    deeper = tmp_path / "new" / "deeper"
    assert plumbing.cannot_write(deeper / "run.json") == f"no folder {deeper}", \
        "a file the user names goes into a folder that exists"
    assert plumbing.cannot_write(deeper / "run.json", new_folders=True) is None, \
        "the lab's own folders (runs/, models/) are made as needed"
    assert plumbing.cannot_write(tmp_path / "model", folder=True) is None
    assert plumbing.cannot_write(blocker / "run.json") == f"{blocker} is a file"
    assert plumbing.cannot_write(tmp_path) == "it is a folder"
    assert plumbing.cannot_write(blocker, folder=True) == "it is a file"
    assert plumbing.cannot_write("/proc/nope/run.json", new_folders=True).startswith(
        "cannot write in /proc")
    assert sorted(os.listdir(tmp_path)) == ["a_file"]
