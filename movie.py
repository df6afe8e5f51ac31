"""movie.py: the dashboard recorded into a movie, MP4 (with ffmpeg) or GIF (--save-movie).

The lab adds a frame at every test measurement; at the end the final state, and the
complete file is moved into place: the file at `path` is never half-written. Without
ffmpeg, an .mp4 becomes a .gif (said once).
"""

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import plumbing
from plumbing import UserError

MOVIE_FPS = 8
MP4_DPI = 80  # 1280 x 720 for the dashboard: both even, as the H.264 encoder needs
GIF_DPI = 50  # 800 x 450: GIF frames are kept in memory until the end


class Movie:
    """A movie being recorded: add_frame(figure, step) at each measurement, then finish."""

    SUFFIXES = (".mp4", ".gif")

    @staticmethod
    def check_name(path):
        """What is wrong with this movie file name, or None."""
        if Path(path).suffix not in Movie.SUFFIXES:
            return "a movie file name must end in .mp4 or .gif"
        return plumbing.cannot_write(path)

    def __init__(self, path):
        from matplotlib import animation

        path = Path(path)
        problem = self.check_name(path)
        if problem:
            raise UserError(f"cannot record the movie {path} ({problem}): "
                            "choose another file name or folder")
        if path.suffix == ".mp4" and not animation.writers.is_available("ffmpeg"):
            path = path.with_suffix(".gif")
            print(f"ffmpeg not found: the movie will be {path} (install ffmpeg for MP4)",
                  file=sys.stderr)
        self.path = str(path)
        self._temp = plumbing.temporary_name(path)
        self._writer = None
        self.frames = 0
        self._last_step = None

    def add_frame(self, figure, step):
        if self._writer is None:
            self._writer, dpi = _writer(Path(self.path))
            self._writer.setup(figure, str(self._temp), dpi=dpi)
        with plumbing.ctrl_c_held() as ctrl_c:  # half a frame would garble the movie
            self._writer.grab_frame()
        self.frames += 1
        self._last_step = step
        if ctrl_c.pressed:
            raise KeyboardInterrupt

    def finish(self, figure, step):
        """Add the final state (if it is new), close the movie file and move it into place."""
        try:
            if self.frames == 0 or step != self._last_step:
                self.add_frame(figure, step)
            self._writer.finish()
            os.replace(self._temp, self.path)
        except (OSError, subprocess.CalledProcessError) as error:
            raise UserError(f"cannot write the movie {self.path} ({error})") from None
        finally:
            with contextlib.suppress(OSError):
                self._temp.unlink()


def _writer(path):
    """A matplotlib movie writer for path (.mp4: ffmpeg, .gif: Pillow) and its dpi."""
    from matplotlib import animation

    if path.suffix == ".gif":
        return animation.PillowWriter(fps=MOVIE_FPS), GIF_DPI

    class FFMpegWriterOwnSession(animation.FFMpegWriter):
        """FFMpegWriter whose ffmpeg does not get the terminal's Ctrl-C.

        Ctrl-C goes to every process of the terminal's foreground group: ffmpeg would
        stop, and the movie could not be finished with the frames so far.
        """

        def _run(self):
            self._proc = subprocess.Popen(
                self._args(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                start_new_session=True,  # (POSIX; Windows: its own process group, below)
                creationflags=(animation.subprocess_creation_flags
                               | getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)))

    return FFMpegWriterOwnSession(fps=MOVIE_FPS, codec="h264"), MP4_DPI
