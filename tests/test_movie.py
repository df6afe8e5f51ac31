"""movie.py: the dashboard recorded as a GIF or an MP4, a frame per test measurement,
valid after Ctrl-C in a terminal."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from conftest import ROOT, child_env, ctrl_c_works
from helpers import child_code, fake_training
from plumbing import UserError
from tensorflowvisu import Dashboard, Movie


def ffprobe_frames(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                          "-show_entries", "stream=nb_read_frames,width,height",
                          "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    stream = json.loads(out)["streams"][0]
    return int(stream["nb_read_frames"]), stream["width"], stream["height"]


def test_gif_movie_has_a_frame_per_test_measurement(tmp_path):
    with pytest.raises(UserError, match="no folder"):  # (a folder must be there: none is made)
        Dashboard("x", 100, live=False, movie=tmp_path / "movies" / "run.gif")
    (tmp_path / "movies").mkdir()
    dashboard = Dashboard("x", 100, live=False, movie=tmp_path / "movies" / "run.gif")
    assert dashboard.wants_pictures and dashboard.movie.path == str(tmp_path / "movies" / "run.gif")
    fake_training(dashboard, 100)
    assert dashboard.save() == [dashboard.movie.path]
    with Image.open(dashboard.movie.path) as picture:
        assert picture.n_frames == len(dashboard.history.test["step"]) == 6  # 0-100 by 20
        assert picture.size == (800, 450)
    assert os.listdir(tmp_path / "movies") == ["run.gif"]


def test_mp4_movie_or_gif_without_ffmpeg(tmp_path):
    from matplotlib import animation

    dashboard = Dashboard("x", 100, live=False, movie=tmp_path / "run.mp4")
    fake_training(dashboard, 100)
    dashboard.save()
    movie = dashboard.movie
    if animation.writers.is_available("ffmpeg"):  # here and in CI
        assert movie.path == str(tmp_path / "run.mp4")
        assert ffprobe_frames(movie.path) == (6, 1280, 720)  # 0-100 by 20
    else:
        assert movie.path == str(tmp_path / "run.gif")
    assert os.listdir(tmp_path) == [Path(movie.path).name]


def test_mp4_falls_back_to_gif_when_ffmpeg_is_missing(tmp_path, monkeypatch, capsys):
    from matplotlib import animation

    monkeypatch.setattr(animation.writers, "is_available", lambda name: name != "ffmpeg")
    dashboard = Dashboard("x", live=False)
    movie = Movie(tmp_path / "run.mp4")
    assert movie.path == str(tmp_path / "run.gif")
    assert "ffmpeg not found" in capsys.readouterr().err
    movie.finish(dashboard.drawn(), 0)
    assert os.listdir(tmp_path) == ["run.gif"]
    with Image.open(movie.path) as picture:
        assert picture.n_frames == 1


@pytest.mark.slow
def test_terminal_ctrl_c_still_gives_a_valid_mp4(tmp_path):
    """Ctrl-C in a terminal reaches the whole process group, ffmpeg included."""
    if not shutil.which("ffmpeg"):
        pytest.skip("ffmpeg is not installed (apt-get install ffmpeg)")
    movie = tmp_path / "run.mp4"
    code = f"""
        import os, signal
        dashboard = tv.Dashboard("x", 1000, live=False, movie={str(movie)!r})
        def on_measure(i):
            if i == 260:
                os.killpg(os.getpgrp(), signal.SIGINT)  # what the terminal does
        try:
            fake_training(dashboard, 1000, on_measure=on_measure)
        except KeyboardInterrupt:
            print("interrupted at", dashboard.history.test["step"][-1])
        dashboard.save()
    """
    result = subprocess.run([sys.executable, "-c", child_code(code)], env=child_env(), cwd=ROOT,
                            capture_output=True, text=True, timeout=120, start_new_session=True,
                            preexec_fn=ctrl_c_works)
    assert result.returncode == 0, result.stderr
    assert "interrupted at 200" in result.stdout
    assert ffprobe_frames(movie)[0] == 12  # 0-180 by 20, 200, and the state when interrupted (260)
    assert os.listdir(tmp_path) == ["run.mp4"]
