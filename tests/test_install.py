"""`pip install -e .`, as a workshop attendee does it for a notebook in another folder."""
import subprocess
import sys
import tomllib

import pytest

from conftest import ROOT

# all the modules but the lessons
SHARED = sorted(p.stem for p in ROOT.glob("*.py")  # all but the lessons and exercise files
                if not p.name.startswith(("mnist_", "my_mnist_")))


def test_pyproject_lists_every_shared_module():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    modules = pyproject["tool"]["setuptools"]["py-modules"]
    assert sorted(modules) == SHARED


@pytest.mark.slow
def test_pip_install_editable_then_every_module_imports_and_a_lesson_runs_from_another_folder(
        tmp_path, mnist_dir):
    """pip install -e . (offline) into a folder of its own, read as a site directory (what a
    virtual environment's site-packages is) by a Python started elsewhere (-I: neither the
    current folder nor PYTHONPATH on its path): import every module, run a lesson."""
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps",
                              "--no-build-isolation", "--no-index",
                              "--prefix", str(tmp_path / "prefix"), "-e", str(ROOT)],
                             capture_output=True, text=True, cwd=tmp_path)
    assert install.returncode == 0, install.stdout + install.stderr
    site_packages, = (tmp_path / "prefix").glob("lib/python*/site-packages")
    elsewhere = tmp_path / "my_notebooks"
    elsewhere.mkdir()
    code = ("import importlib, site, sys; site.addsitedir(sys.argv[1]); "
            "[importlib.import_module(m) for m in sys.argv[3:]]; import lab; "
            "h = lab.run('1.0', steps=20, no_vis=True, data_dir=sys.argv[2], history='run.json', "
            "save_model='model'); print(h.final['steps'], lab.__file__)")
    run = subprocess.run([sys.executable, "-I", "-c", code, str(site_packages), mnist_dir, *SHARED],
                         capture_output=True, text=True, cwd=elsewhere, env={"MPLBACKEND": "Agg"})
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.splitlines()[-1] == f"20 {ROOT / 'lab.py'}"
    assert (elsewhere / "run.json").exists() and (elsewhere / "model" / "saved_model.pb").exists()
    ignored = subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all"],
                             capture_output=True, text=True, cwd=ROOT).stdout
    assert not [line for line in ignored.splitlines()
                if line.startswith("??") and "egg-info" in line], \
        "what pip leaves in the project is ignored by git"
