"""README.md and docs/*.md: every command and code block they show a user is run here, as
written (or shortened, said so), or mapped to the test or benchmark that covers it.

The commands are read from the pages themselves: the lines of the ```sh / ```bash blocks
(`a && b` is two commands, `# ...` comments dropped) and the commands quoted in the text
(`python ...`, `pip ...`); the ```python blocks. A command added to a page that is neither
run by a test of this file (RUN, filled by @runs) nor in MAPPED fails
test_every_command_of_the_docs_is_run_or_mapped; so does a mapping to a test that no longer
exists, or a command a page no longer shows.

The commands run in a copy of the lab made for the session (its .py files, MNIST in its
data/, its .venv a link to this Python's environment), from its folder, the environment
activated as README says, without a display (MPLBACKEND=Agg): what a user's terminal on a
machine without a screen shows. The runs, models and pictures stay in the copy.
"""
import ast
import functools
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import FINAL_LINES, ROOT, child_env, drawn_digit
from helpers import assert_picture, parse

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
# A command quoted in the text: `python ...`, `pip ...`, `.venv\Scripts\activate`...
QUOTED_COMMAND = re.compile(r"^(!?python3?\s|pip\s|tensorboard\s|jupyter\s|source\s|apt-get\s"
                            r"|export\s|\.venv[/\\]\S)")
MNIST_FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def norm(command):
    return " ".join(command.split())


def relative(doc):
    return doc.relative_to(ROOT).as_posix()


def split(line):
    """A shell line as commands: `a && b` is two; a trailing `# comment` is dropped."""
    line = re.sub(r"\s+#\s.*$", "", line.strip())
    return [norm(part) for part in line.split(" && ") if part.strip()]


def doc_commands():
    """{command: [where, ...]} of every command the pages show, in blocks and in the text."""
    found = {}
    for doc in DOCS:
        text = doc.read_text()
        for fence in FENCE.finditer(text):
            if fence.group(1) not in ("sh", "bash"):
                continue
            line_number = text[:fence.start()].count("\n") + 2
            for offset, line in enumerate(fence.group(2).replace("\\\n", " ").splitlines()):
                if line.strip() and not line.strip().startswith("#"):
                    for command in split(line):
                        found.setdefault(command, []).append(
                            f"{relative(doc)}:{line_number + offset}")
        prose = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
        for span in re.finditer(r"`([^`]+)`", prose):  # (a quoted command may wrap)
            if QUOTED_COMMAND.match(span.group(1)):
                for command in split(span.group(1)):
                    found.setdefault(command, []).append(
                        f"{relative(doc)}:{prose[:span.start()].count(chr(10)) + 1}")
    return found


def python_blocks():
    """{"page: first line": code} of every ```python block."""
    found = {}
    for doc in DOCS:
        for fence in FENCE.finditer(doc.read_text()):
            if fence.group(1) == "python":
                code = fence.group(2)
                found[f"{relative(doc)}: {code.splitlines()[0].split('  #')[0].strip()}"] = code
    return found


# ------------------------------------------------------- what runs each command, or covers it


RUN = {}  # command: the test of this file that runs it (filled by @runs)
SHORTENED = " --steps 20 --no-vis"  # added to the lesson runs that take minutes as written


def runs(*commands):
    """The test runs these commands of the docs (as written, or + SHORTENED when it says so)."""
    def register(test):
        for command in commands:
            RUN[norm(command)] = test.__name__
        test.commands = [norm(c) for c in commands]
        return test
    return register


# A command that needs a window, a browser, the internet, another system or minutes to
# hours: the tests and benchmarks that do what it does (a test: file::name; a benchmark
# script or CI's script: its path). Each must exist.
MAPPED = {
    # README: set-up, as CI does it (a fresh virtual environment, the requirements)
    "python3 -m venv .venv": [".ci/run"],
    ".venv/bin/pip install -r requirements.txt": [".ci/run"],
    ".venv/bin/pip install -r requirements.txt -r requirements-dev.txt": [".ci/run"],
    ".venv/bin/python -m pytest -n 2": [".ci/run",
                                        "tests/test_docs.py::test_the_readmes_test_command_is_cis"],
    "python -m pytest -n 2": [".ci/run",
                              "tests/test_docs.py::test_the_readmes_test_command_is_cis"],
    "python -m pytest -m \"not slow\" -n 2": [
        "tests/test_docs.py::test_the_fast_tier_is_the_suite_without_its_slow_tests"],
    ".venv\\Scripts\\activate": [  # Windows: the tests run on Linux
        "tests/test_docs.py::test_readme_activates_the_environment_before_the_first_python"],
    "export MNIST_DATA_DIR=/path/to/mnist": [
        "tests/test_mnistdata.py::test_data_dir_beats_environment_beats_default", ".ci/run"],
    "export MNIST_DATA_DIR=...": [
        "tests/test_mnistdata.py::test_data_dir_beats_environment_beats_default", ".ci/run"],
    # lessons: full runs (seconds to half an hour each)
    "python mnist_X.py": [
        "tests/test_lessons.py::test_short_run_ends_with_the_two_lines_and_learns",
        "benchmarks/lab_time.py"],
    "python mnist_1.0_softmax.py": ["benchmarks/startup.py", "benchmarks/lab_time.py"],
    "python benchmarks/lab_time.py --all": ["benchmarks/lab_time.py",
                                            "benchmarks/results/lab_all.json"],
    "python mnist_5.1_batchnorm_convolutional_averaged.py --seed S --no-vis": [
        "benchmarks/lab_time.py", "benchmarks/results/lesson_5.1_seed1_history.json",
        "tests/test_lessons.py::test_the_averaged_weights_are_what_is_tested_and_saved"],
    "python my_mnist_2.0.py": [
        "tests/test_exercises.py::test_an_exercise_file_runs_from_any_folder_as_a_lesson_does"],
    "python mnist_3.0_convolutional.py --view f": [  # a window, 10,000 steps
        "tests/test_tensorflowvisu.py::test_the_dashboard_shows_the_first_layers_filters_as_they_train",
        "tests/test_screens.py::test_real_window_on_xvfb"],
    # windows
    "python predict.py --draw": [
        "tests/test_predict.py::test_draw_in_a_real_window_on_xvfb",
        "tests/test_predict.py::test_the_pad_shows_every_layer_as_the_pen_moves",
        "benchmarks/pad_rate.py"],
    "python predict.py my_digit.png --show": [
        "tests/test_predict.py::test_show_without_a_display_says_so_and_still_prints"],
    "python predict.py my_digit.png": [
        "tests/test_predict.py::test_digits_drawn_with_lines_and_ellipses_are_right"],
    "python predict.py --explain my_digit.png": [
        "tests/test_explain.py::test_predict_explain_draws_pictures_and_says_the_answers"],
    "python predict.py --explain --test-digit 8": [
        "tests/test_explain.py::test_predict_explain_draws_pictures_and_says_the_answers"],
    "python tensorflowvisu.py compare ...": [
        "tests/test_docs.py::test_the_readmes_pictures_of_finished_runs"],
    # lesson 6.0: two minutes as written; clusters of machines
    "python mnist_6.0_distributed.py": [
        "tests/test_cluster.py::test_two_replicas_train_one_model_and_end_with_identical_copies",
        "tests/test_cluster.py::test_a_killed_run_resumes_from_its_checkpoint_with_the_same_result"],
    "TF_CONFIG='{\"cluster\": {\"worker\": [\"10.0.0.1:12345\", \"10.0.0.2:12345\"]}, \"task\": "
    "{\"type\": \"worker\", \"index\": 0}}' python mnist_6.0_distributed.py "
    "--data-dir /path/to/mnist": [
        "tests/test_cluster.py::test_with_tf_config_every_worker_reports_a_port_in_use",
        "tests/test_cluster.py::test_with_tf_config_a_frozen_worker_stops_the_others_with_one_line",
        "benchmarks/results/lesson_6.0_two_workers_history.json"],
    "TF_CONFIG='{\"cluster\": {\"worker\": [\"10.0.0.1:12345\", \"10.0.0.2:12345\"]}, \"task\": "
    "{\"type\": \"worker\", \"index\": 1}}' python mnist_6.0_distributed.py "
    "--data-dir /path/to/mnist": [
        "tests/test_cluster.py::test_with_tf_config_every_worker_reports_a_port_in_use",
        "tests/test_cluster.py::test_with_tf_config_a_frozen_worker_stops_the_others_with_one_line"],
    "!python mnist_6.0_distributed.py": [
        "tests/test_notebook.py::test_the_workshop_notebook_runs_top_to_bottom"],
    # TensorBoard, Jupyter, installs (requirements-dev.txt has tensorboard and jupyterlab)
    "pip install tensorboard": [".ci/run",
                                "tests/test_lab.py::test_one_run_writes_every_requested_output"],
    "tensorboard --logdir logs": [
        "tests/test_lab.py::test_tensorboard_shows_the_logs_to_this_machine_only"],
    "pip install jupyterlab": [".ci/run"],
    "jupyter lab": ["tests/test_browser.py::test_the_dashboard_lives_under_a_training_cell"],
    "pip install -e .": ["tests/test_install.py::"
                         "test_pip_install_editable_then_every_module_imports_and_a_lesson_runs_from_another_folder"],
    ".venv/bin/pip install -r requirements.txt jupyterlab": [".ci/run"],
    # the internet: pip's own flags are checked, nothing is downloaded
    "pip download -r requirements.txt jupyterlab -d wheels": [
        "tests/test_docs.py::test_the_offline_install_uses_flags_pip_has"],
    "pip install --no-index --find-links wheels -r requirements.txt jupyterlab": [
        "tests/test_docs.py::test_the_offline_install_uses_flags_pip_has"],
    "apt-get install xvfb xdotool ffmpeg openssl": [".ci/run"],
    "apt-get install chromium chromium-driver": [".ci/run"],
    # benchmarks: minutes each, their figures in benchmarks/results/
    "python benchmarks/pad_rate.py": ["benchmarks/pad_rate.py", "benchmarks/results/pad_rate.json"],
    "python benchmarks/lab_time.py": ["benchmarks/lab_time.py", "benchmarks/results/lab_time.json"],
    "python benchmarks/throughput.py": ["benchmarks/throughput.py",
                                        "benchmarks/results/throughput.json"],
    "python benchmarks/startup.py": ["benchmarks/startup.py", "benchmarks/results/startup.json"],
    "python benchmarks/check_time.py": ["benchmarks/check_time.py",
                                        "benchmarks/results/check_time.json"],
    "python benchmarks/dashboard_overhead.py --notebook": [
        "benchmarks/dashboard_overhead.py", "benchmarks/results/dashboard_overhead.json"],
    "python benchmarks/notebook_picture_cost.py": [
        "benchmarks/notebook_picture_cost.py", "benchmarks/results/notebook_picture_cost.json"],
    "python benchmarks/callback_overhead.py": [
        "benchmarks/callback_overhead.py", "benchmarks/results/callback_overhead.json"],
    # docs/speed.md's before/after of issue 29 (the code before it checked out as ../baseline)
    "python benchmarks/step_time.py --lessons 2.2,3.0,4.2,5.0,5.1 --test-batches 1000 "
    "base=../baseline new=.": ["benchmarks/step_time.py", "benchmarks/results/step_time.json"],
    "python benchmarks/step_time.py --lessons 2.2,3.0,4.2 --rounds 8 "
    "--test-batches 1000,250,500,2000,10000 new=.": ["benchmarks/step_time.py"],
    "python benchmarks/step_time.py --processes --repeats 6 --lessons 3.0,3.1 --test-batches "
    "1000 before=DIR after=.": ["benchmarks/step_time.py",
                                "benchmarks/results/step_time_subpixel.json"],
    "python benchmarks/conv_gradient.py": ["benchmarks/conv_gradient.py",
                                           "benchmarks/results/conv_gradient.json"],
    "python benchmarks/flops.py --peak": ["benchmarks/flops.py"],
    # docs/speed.md, issue 29's third round: what every lesson pays before and after training
    'python -X importtime -c "import ml_dtypes"': ["requirements.txt"],
    "python benchmarks/startup.py --repeats 3": ["benchmarks/startup.py",
                                                 "benchmarks/results/startup_round3.json"],
    "python benchmarks/lab_time.py --steps 20": ["benchmarks/lab_time.py"],
    "python benchmarks/profile_ops.py --repeats 20": ["benchmarks/profile_ops.py",
                                                       "benchmarks/results/profile_ops.json"],
    "python benchmarks/throughput.py --models 3.0 --repeats 1 --steps-conv 600 "
    "--keras-variants-conv auto-spe20 --torch-variants-conv eager,cl "
    "--ours-variant base=../baseline": ["benchmarks/throughput.py"],
    # docs/speed.md, issue 29's fourth round: 3.0's first layer, pyplot, the lab in turns
    "python benchmarks/conv_first_layer.py": ["benchmarks/conv_first_layer.py",
                                              "benchmarks/results/conv_first_layer.json"],
    "python benchmarks/step_time.py --lessons 3.0 --rounds 40 --test-batches 1000 "
    "before=DIR after=.": ["benchmarks/step_time.py",
                           "benchmarks/results/step_time_first_layer.json"],
    'python -c "import tensorflow"': ["tests/test_plumbing.py::"
                                      "test_a_run_without_the_dashboard_loads_tensorflow_"
                                      "without_matplotlib"],
    "python benchmarks/lab_turns.py --repeats 2 before=../baseline:PYTHON after=.": [
        "benchmarks/lab_turns.py", "benchmarks/results/lab_turns_round4.json",
        "benchmarks/results/lab_turns_round6.json", "benchmarks/results/lab_turns_round7.json"],
    "python benchmarks/profile_ops.py --lessons 3.0,4.2": [
        "benchmarks/profile_ops.py", "benchmarks/results/profile_ops_round4.json"],
    # docs/speed.md, issue 29's fifth round: the lab, and 5.1, on a quiet machine
    "python benchmarks/lab_turns.py --repeats 1 before=../baseline:PYTHON after=.": [
        "benchmarks/lab_turns.py", "benchmarks/results/lab_turns_round5.json",
        "benchmarks/results/lab_turns_round7_pass3.json"],
    "python benchmarks/lab_turns.py --lessons 5.1 before=../baseline:PYTHON after=.": [
        "benchmarks/lab_turns.py", "benchmarks/results/lab_turns_5.1.json"],
    # docs/speed.md, issue 29's sixth round: 2.2's dropout under XLA (the lab turns: round 6)
    "python benchmarks/lab_time.py --lessons 2.2 --seeds 5": [
        "benchmarks/lab_time.py", "benchmarks/results/lab_time_2.2_seeded_dropout.json",
        "benchmarks/results/lab_time_2.2_xla_off.json"],
    # docs/speed.md, issue 29's seventh round: 3.0's gradient interleaved by a transpose
    "python benchmarks/step_time.py --lessons 3.0,3.1 --processes --repeats 8 --calls 10 "
    "--test-batches 1000 before=DIR after=.": ["benchmarks/step_time.py",
                                               "benchmarks/results/step_time_transpose.json"],
    # docs/speed.md, --precision bf16: measured on an AVX2 CPU; to measure on a bf16 one
    "python benchmarks/step_time.py --lessons 2.2,3.0,4.2 --rounds 5 --test-batches 1000 "
    "float32=. bf16=.:precision=bf16": ["benchmarks/step_time.py",
                                         "benchmarks/results/step_time_bf16_avx2.json"],
    "python benchmarks/step_time.py --lessons 3.0,4.2,5.0,5.1 --test-batches 1000 float32=. "
    "bf16=.:precision=bf16": ["benchmarks/step_time.py"],
    "python benchmarks/lab_time.py --lessons 4.2,5.0,5.1 --seeds 2": ["benchmarks/lab_time.py"],
    'python benchmarks/lab_time.py --lessons 4.2,5.0,5.1 --seeds 2 --args="--precision bf16"': [
        "benchmarks/lab_time.py"],
}

# ```python blocks run elsewhere as written (their key: "page: first line")
MAPPED_BLOCKS = {
    "docs/your-own-network.md: import numpy as np": [
        "tests/test_tensorflowvisu.py::test_the_documented_loop_runs_as_written_and_compare_overlays_it"],
}

# commands quoted with placeholders rather than files
PLACEHOLDER_SCRIPTS = {"mnist_X.py", "my_mnist_2.0.py"}


def test_every_command_of_the_docs_is_run_or_mapped():
    commands = doc_commands()
    missing = {c: where for c, where in commands.items() if c not in RUN and c not in MAPPED}
    assert not missing, ("commands of the docs that no test runs and MAPPED does not map "
                         f"(run them in tests/test_docs.py, or map them): {missing}")
    stale = sorted(set(RUN) - set(commands)) + sorted(set(MAPPED) - set(commands))
    assert not stale, f"commands the docs no longer show: {stale}"
    assert not set(RUN) & set(MAPPED), "run and mapped: choose one"


def test_every_python_block_of_the_docs_is_run_or_mapped():
    blocks = python_blocks()
    missing = set(blocks) - set(RUN_BLOCKS) - set(MAPPED_BLOCKS)
    assert not missing, f"```python blocks no test runs: {sorted(missing)}"
    stale = (set(RUN_BLOCKS) | set(MAPPED_BLOCKS)) - set(blocks)
    assert not stale, f"blocks the docs no longer show: {stale}"


@functools.lru_cache(maxsize=None)
def defined_tests(path):
    tree = ast.parse((ROOT / path).read_text())
    return {node.name for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def test_every_mapped_test_and_benchmark_exists():
    targets = {t for mapped in (MAPPED, MAPPED_BLOCKS) for ts in mapped.values() for t in ts}
    for target in sorted(targets):
        path, _, name = target.partition("::")
        assert (ROOT / path).is_file(), f"{target}: no such file"
        if name:
            assert name.startswith("test_") and name in defined_tests(path), \
                f"{target}: no such test"


def test_every_code_block_is_fenced_with_its_language():
    """Only ```sh, ```bash and ```python blocks (read above); no indented code blocks."""
    for doc in DOCS:
        text = doc.read_text()
        languages = {m.group(1) for m in FENCE.finditer(text)}
        assert languages <= {"sh", "bash", "python"}, (doc.name, languages)
        prose = FENCE.sub("", text).splitlines()
        indented = [line for before, line in zip(prose, prose[1:])
                    if not before.strip() and line.startswith("    ") and line.strip()]
        assert not indented, (doc.name, indented)


# ------------------------------------------------------------------------- the pages themselves


def slug(heading):
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("doc", DOCS, ids=relative)
def test_every_relative_link_resolves(doc):
    for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (doc.parent / path).resolve() if path else doc
        assert linked.exists(), f"{relative(doc)}: {target}: no such file"
        if anchor:
            headings = re.findall(r"^#+ (.*)$", linked.read_text(), re.M)
            assert anchor in [slug(h) for h in headings], \
                f"{relative(doc)}: {target}: no such heading"


def test_readme_is_a_short_page():
    assert len(README.read_text()) < 15_000


def test_readme_activates_the_environment_before_the_first_python():
    """Every command after the quick start assumes `python` is the lab's: README says how to
    make it so (Linux and macOS, Windows) before its first bare `python` command."""
    text = README.read_text()
    first = re.search(r"(^|`)python ", text, re.M)
    assert first, "README shows no python command"
    for activate in ("source .venv/bin/activate", ".venv\\Scripts\\activate"):
        assert -1 < text.find(activate) < first.start(), activate


def test_a_python_without_the_labs_packages_says_so_in_one_line(tmp_path):
    """README: "A lesson started with a Python that lacks TensorFlow says so in one line,
    with the command to fix it" (a Python without its site-packages: python -S)."""
    result = subprocess.run([sys.executable, "-S", str(ROOT / "mnist_1.0_softmax.py")],
                            cwd=tmp_path, env=child_env(), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    line, = result.stderr.splitlines()
    assert line.startswith("error: ") and "TensorFlow" in line and "not installed" in line, line
    assert "source .venv/bin/activate" in line and ".venv\\Scripts\\activate" in line, line


def quoted_in_prose(doc):
    """The `code spans` of a page's text (outside its blocks)."""
    return re.findall(r"`([^`]+)`", FENCE.sub("", doc.read_text()))


def test_every_function_the_docs_name_exists():
    """`lab.train_model`, `explain.show(seen[0])`, `tensorflowvisu.DashboardCallback`...:
    every module.name the text quotes, of the lab's own modules, is there."""
    import importlib

    modules = {p.stem for p in ROOT.glob("*.py") if not p.name.startswith("mnist_")}
    named = 0
    for doc in DOCS:
        for span in quoted_in_prose(doc):
            for match in re.finditer(r"(?<![\w.])([a-z_]+)((?:\.[A-Za-z_]\w*)+)", span):
                if match.group(1) not in modules or match.group(2) == ".py":
                    continue
                thing = importlib.import_module(match.group(1))
                for name in match.group(2).split(".")[1:]:
                    assert hasattr(thing, name), f"{relative(doc)}: `{span}`: no {name}"
                    thing = getattr(thing, name)
                named += 1
    assert named > 15


def test_the_dashboards_api_is_as_written():
    """docs/your-own-network.md's `Dashboard(name, steps, *, live=True, ...)`, `train(...)`,
    `test(...)`, `finish(...)`: every parameter it gives is the method's, of the same kind
    (after * or not), with the default it says."""
    import inspect

    import tensorflowvisu

    written = [span for span in quoted_in_prose(ROOT / "docs" / "your-own-network.md")
               if re.fullmatch(r"(Dashboard|train|test|finish)\(.*\)", span, re.S)]
    assert [w.split("(")[0] for w in written] == ["Dashboard", "train", "test", "finish"]
    for span in written:
        name, _, parameters = span.partition("(")
        doc = ast.parse(f"def {name}({' '.join(parameters[:-1].split())}): pass").body[0].args
        real = inspect.signature(tensorflowvisu.Dashboard if name == "Dashboard"
                                 else getattr(tensorflowvisu.Dashboard, name)).parameters
        kinds = {"args": inspect.Parameter.POSITIONAL_OR_KEYWORD,
                 "kwonlyargs": inspect.Parameter.KEYWORD_ONLY}
        for kind, expected in kinds.items():
            for argument in getattr(doc, kind):
                assert argument.arg in real and real[argument.arg].kind == expected, \
                    (span, argument.arg)
        for argument, default in [*zip(doc.args[::-1], doc.defaults[::-1]),
                                  *zip(doc.kwonlyargs, doc.kw_defaults)]:
            if default is not None:
                assert real[argument.arg].default == ast.literal_eval(default), (span, argument.arg)
        if doc.vararg:
            assert real[doc.vararg.arg].kind == inspect.Parameter.VAR_POSITIONAL, span


def test_the_readmes_test_command_is_cis():
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip().startswith("python -m pytest")]
    assert ci == ["python -m pytest -n 2"]
    tests_section = README.read_text().split("\n## Tests\n")[1]
    block = FENCE.search(tests_section).group(2).strip()
    assert block == ci[0]
    quick_start = README.read_text().split("\n## Quick start\n")[1].split("\n## ")[0]
    assert f".venv/bin/{ci[0]}" in quick_start
    for doc in (README, ROOT / "docs" / "modules.md"):  # the fast tier, written where it is run
        assert 'python -m pytest -m "not slow" -n 2' in doc.read_text()


@pytest.mark.slow  # (a pytest process: TensorFlow loads, 10 to 20 s)
def test_the_fast_tier_is_the_suite_without_its_slow_tests():
    """`python -m pytest -m "not slow" -n 2` (README) leaves out the tests marked slow:
    here this file's, collected (running it would run the suite inside the suite)."""
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                             "-m", "not slow", "-p", "no:cacheprovider", "tests/test_docs.py"],
                            cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    fast = {line.split("::")[1].split("[")[0]
            for line in result.stdout.splitlines() if "::" in line}
    tests = {name: test for name, test in globals().items() if name.startswith("test_")}
    slow = {name for name, test in tests.items()
            if any(mark.name == "slow" for mark in getattr(test, "pytestmark", []))}
    assert slow and fast == set(tests) - slow, (fast, slow)


def test_what_the_docs_install_by_hand_ci_installs():
    """The `apt-get install ...` and `pip install PACKAGE` of the docs, mapped to .ci/run
    above: CI installs those packages (the system ones by .ci/run, the Python ones from
    requirements*.txt), so the tests that need them run there."""
    ci = (ROOT / ".ci" / "run").read_text()
    requirements = "".join((ROOT / name).read_text()
                           for name in ("requirements.txt", "requirements-dev.txt"))
    for command in doc_commands():
        words = command.split()
        if words[:2] == ["apt-get", "install"]:
            for package in words[2:]:
                assert re.search(rf"missing\+=\({re.escape(package)}\)", ci), (command, package)
        elif words[:2] == ["pip", "install"] and len(words) == 3 and words[2].isalpha():
            assert re.search(rf"^{words[2]}\b", requirements, re.M), command


def test_the_offline_install_uses_flags_pip_has():
    """docs/workshop.md's wheels for a room without internet: pip's flags, as written
    (downloading needs the internet, which the tests do not have)."""
    for command in ("download", "install"):
        help_text = subprocess.run([sys.executable, "-m", "pip", command, "--help"],
                                   capture_output=True, text=True, timeout=60).stdout
        flags = {"download": ["-r", "-d"], "install": ["--no-index", "--find-links", "-r"]}
        for flag in flags[command]:
            assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", help_text), (command, flag)


# ------------------------------------------------------------- the flags of the docs' commands


def scripts_and_flags():
    """{(script, subcommand or None): {flag: where}} of every `python X.py ...` in the docs,
    with the lesson flags of docs/lessons.md's table (1.0's) and its lesson 6.0 flags."""
    found = {}
    for command, where in doc_commands().items():
        match = re.search(r"(?:^|\s)!?python (\S+\.py)((?: \S+)*)$", command)
        if not match or match.group(1) in PLACEHOLDER_SCRIPTS:
            continue
        script, words = match.group(1), match.group(2).split()
        sub = words[0] if script in ("tensorflowvisu.py", "exercises.py") and words else None
        for flag in (w.split("=")[0] for w in words if w.startswith("-")):  # --args="..."
            found.setdefault((script, sub), {})[flag] = where[0]
        found.setdefault((script, sub), {})
    lessons = (ROOT / "docs" / "lessons.md").read_text()
    for flag in re.findall(r"^\| `(--[\w-]+)", lessons, re.M):
        found.setdefault(("mnist_1.0_softmax.py", None), {})[flag] = "docs/lessons.md (table)"
    measured = re.search(r"`python (benchmarks/callback_overhead\.py)`.*?`(--repeats [^`]+)`",
                         (ROOT / "docs" / "your-own-network.md").read_text(), re.S)
    for flag in re.findall(r"--[\w-]+", measured.group(2)):
        found.setdefault((measured.group(1), None), {})[flag] = "docs/your-own-network.md"
    distributed = re.search(r"Lesson 6\.0 adds (.*?)see", lessons, re.S).group(1)
    for flag in re.findall(r"`(--[\w-]+)", distributed):
        found.setdefault(("mnist_6.0_distributed.py", None), {})[flag] = "docs/lessons.md (6.0)"
    return found


FLAGS = scripts_and_flags()


@pytest.mark.parametrize("script, sub", sorted(FLAGS, key=str),
                         ids=[f"{s} {b or ''}".strip() for s, b in sorted(FLAGS, key=str)])
def test_every_flag_of_the_docs_is_in_the_scripts_help(script, sub):
    """`python X.py --help` answers in under a second (flags are parsed before TensorFlow
    loads): every flag the docs give X.py is there."""
    assert (ROOT / script).is_file(), f"the docs run {script}, which does not exist"
    result = subprocess.run([sys.executable, str(ROOT / script), *([sub] if sub else []), "--help"],
                            cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for flag, where in FLAGS[(script, sub)].items():
        assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", result.stdout), \
            f"{where}: {script} {sub or ''} has no {flag} (see its --help)"


# --------------------------------------------------------------------- the commands, run


@pytest.fixture(scope="session")
def lab(tmp_path_factory, mnist_dir):
    """A copy of the lab as a user has it: its files, the four MNIST files in data/ (no
    download: README's offline way), and .venv, a link to this Python's environment."""
    folder = tmp_path_factory.mktemp("user") / "mnist-lab"
    folder.mkdir()
    for path in [*ROOT.glob("*.py"), *ROOT.glob("requirements*.txt"), ROOT / "pyproject.toml",
                 ROOT / "workshop.ipynb"]:
        shutil.copy2(path, folder)
    (folder / "data").mkdir()
    for name in MNIST_FILES:
        (folder / "data" / name).symlink_to(Path(mnist_dir) / name)
    (folder / ".venv").symlink_to(sys.prefix, target_is_directory=True)
    assert (folder / ".venv" / "bin" / "activate").exists()
    return folder


def run(lab, command, activate=True, cwd=None, timeout=900, **env):
    """A command as a user types it in the lab's folder, in bash, the environment activated
    (`source .venv/bin/activate`, README) unless activate=False; no display, no MNIST_DATA_DIR;
    env: other variables (None removes one)."""
    script = f"source {lab}/.venv/bin/activate && {command}" if activate else command
    env = child_env(None, MNIST_DATA_DIR=None, VIRTUAL_ENV=None, PYTHONPATH=None, **env)
    return subprocess.run(["bash", "-c", script], cwd=cwd or lab, env=env, capture_output=True,
                          text=True, timeout=timeout)


def ran(result):
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result.stdout


def accuracies(stdout):
    match = FINAL_LINES.search(stdout)
    assert match, stdout[-1000:]
    return float(match.group(1)), float(match.group(2))


@pytest.fixture(scope="session")
def histories(lab, mnist_dir):
    """Short runs of lessons 2.0 and 2.1 in the copy (what README's comparison needs in
    runs/), in this process, their dashboards drawn (into a picture: the panels that
    `tensorflowvisu.py panel` draws again are kept by a run that drew them)."""
    import lab as lab_module

    for folder in ("runs", "models"):  # (this process's lab makes its own folders, not the copy's)
        (lab / folder).mkdir(exist_ok=True)
    for number, name in (("2.0", "mnist_2.0_five_layers_sigmoid"),
                         ("2.1", "mnist_2.1_five_layers_relu")):
        lab_module.run(number, steps=200, data_dir=mnist_dir, save_png=lab / f"{name}.png",
                       history=lab / "runs" / f"{name}.json", save_model=lab / "models" / name)
    return lab


@pytest.fixture(scope="session")
def conv_model(lab, mnist_dir):
    """Lesson 3.0 trained briefly in the copy (300 steps, about 97 %): its history and model."""
    import lab as lab_module

    for folder in ("runs", "models"):
        (lab / folder).mkdir(exist_ok=True)
    name = "mnist_3.0_convolutional"
    lab_module.run("3.0", steps=300, no_vis=True, data_dir=mnist_dir,
                   history=lab / "runs" / f"{name}.json", save_model=lab / "models" / name)
    return lab


@pytest.mark.slow  # (two short runs)
def test_a_run_without_a_dashboard_keeps_panels_1_and_2_unless_it_saved_a_picture(
        tmp_path, mnist_dir):
    """README: "a run without one (`--no-vis`, or no display) keeps panels 1 and 2 only,
    unless it had `--save-png`" (no display here)."""
    import lab as lab_module
    import plumbing
    from history import History

    for flags, kept in (({}, False), ({"save_png": tmp_path / "dashboard.png"}, True)):
        lab_module.run("1.0", steps=20, no_vis=True, data_dir=mnist_dir, **flags,
                       history=tmp_path / "run.json", save_model=tmp_path / "model")
        history = History.load(tmp_path / "run.json")
        history.check_panels([1, 2])
        for panel in (3, 4, 5, 6):
            if kept:
                history.check_panels([panel])
            else:
                with pytest.raises(plumbing.UserError, match=f"kept no picture of panel {panel}"):
                    history.check_panels([panel])


@pytest.mark.slow  # (the whole lesson as written: 2,000 steps)
@runs(".venv/bin/python mnist_1.0_softmax.py")
def test_the_quick_start_trains_the_first_lesson_from_mnist_in_data(lab):
    """README's quick start, without activating (it names .venv/bin/python), with the four
    MNIST files in data/ and no display: what the first line, the report and the two last
    lines say, and the files the run leaves in the lab's folders."""
    out = ran(run(lab, test_the_quick_start_trains_the_first_lesson_from_mnist_in_data.commands[0],
                  activate=False))
    first = out.splitlines()[0]
    assert re.search(r"^mnist_1\.0_softmax: 2000 steps .*; (CPU, (oneDNN|Eigen)(, XLA)?|GPU) \(",
                     first), first
    assert "digit  precision  recall" in out
    assert "confusion matrix (rows: true digit, columns: predicted digit)" in out
    best, final = accuracies(out)
    assert best >= 0.920 and final >= 0.915, (best, final)  # README's table: target >= 0.920
    assert (lab / "runs" / "mnist_1.0_softmax.json").is_file()
    assert len(list((lab / "runs" / "mnist_1.0_softmax").glob("*.json"))) >= 1
    assert (lab / "models" / "mnist_1.0_softmax" / "saved_model.pb").is_file()


@pytest.mark.slow  # (the whole lesson, recorded)
@runs("python mnist_1.0_softmax.py --view f --save-movie filters.mp4")
def test_the_first_layers_filters_as_a_movie(lab):
    command, = test_the_first_layers_filters_as_a_movie.commands
    accuracies(ran(run(lab, command)))
    movie = (lab / "filters.mp4").read_bytes()
    assert movie[4:8] == b"ftyp" and len(movie) > 20_000, len(movie)


@pytest.mark.slow  # (two short lessons, then three pictures)
@runs("python tensorflowvisu.py compare runs/mnist_2.0_five_layers_sigmoid.json "
      "runs/mnist_2.1_five_layers_relu.json --save-png compare.png",
      "python tensorflowvisu.py confusion runs/mnist_2.1_five_layers_relu.json "
      "--save-png confusion.png",
      "python tensorflowvisu.py panel runs/mnist_2.1_five_layers_relu.json 6 --save-png panel6.png")
def test_the_readmes_pictures_of_finished_runs(histories):
    for command in test_the_readmes_pictures_of_finished_runs.commands:
        ran(run(histories, command))
        picture = histories / command.split()[-1]
        assert_picture(picture)
        picture.unlink()


@pytest.mark.slow  # (each check traces the file: 5 to 10 s)
@runs("python exercises.py start 2.0", "python exercises.py check my_mnist_2.0.py",
      "python exercises.py check my_mnist_2.0.py --solution")
def test_the_exercise_of_lesson_2(lab):
    start, check, solution = test_the_exercise_of_lesson_2.commands
    out = ran(run(lab, start))
    assert out.splitlines()[0] == str(lab / "my_mnist_2.0.py")
    for command in (check, solution):
        result = run(lab, command)
        assert result.returncode == 1, result.stderr  # the starting file is not the lesson yet
        assert "to fix: a layer is missing" in result.stdout and "\nhint: " in result.stdout
        shows_lines = "the lesson's lines (mnist_2.0_five_layers_sigmoid.py):" in result.stdout
        assert shows_lines == (command == solution), result.stdout


@pytest.mark.slow  # (a lesson and a check: 15 s)
@runs("python mnist_1.0_softmax.py --no-vis --steps 20",
      "python exercises.py start 1.0 --folder try",
      "python exercises.py check try/my_mnist_1.0.py", "source .venv/bin/activate")
def test_the_workshops_set_up_check(lab):
    """docs/workshop.md: "The first ends with its two accuracy lines; the check says
    `model(X) is not written yet`." (run() activates the environment first, as it says)"""
    lesson, start, check, _ = test_the_workshops_set_up_check.commands
    accuracies(ran(run(lab, lesson)))
    ran(run(lab, start))
    result = run(lab, check)
    assert result.returncode == 1 and "model(X) is not written yet" in result.stdout, result.stdout


@pytest.mark.slow  # (a short lesson 3.0, then predict.py three times: 30 s)
@runs("python tensorflowvisu.py confusion runs/mnist_3.0_convolutional.json "
      "--save-png confusion.png",
      "python predict.py --model models/mnist_3.0_convolutional my_digit.png photo.jpg",
      "python predict.py --explain --test-digit 8 --save-png seen.png")
def test_the_trained_models_commands(conv_model):
    """docs/lessons.md and README: the confusion matrix, your own pictures (made here: a 7
    drawn dark on light, a 1 light on dark in a colour JPEG), what the network sees."""
    lab = conv_model
    confusion, predict, explain = test_the_trained_models_commands.commands
    ran(run(lab, confusion))
    assert_picture(lab / "confusion.png")
    drawn_digit(7, 150).save(lab / "my_digit.png")
    drawn_digit(1, 300, dark_on_light=False).convert("RGB").save(lab / "photo.jpg")
    answers = parse(ran(run(lab, predict)))
    assert list(answers) == ["my_digit.png", "photo.jpg"]
    assert answers["photo.jpg"][0] == 1, answers
    result = run(lab, explain)
    out = ran(result)
    assert re.fullmatch(r"test digit 8 \(a 5\): \d \(p=[01]\.\d\d\)\n", out), out
    assert "using the most recent model:" in result.stderr
    picture = np.asarray(Image.open(lab / "seen.png").convert("L"), dtype=float)
    assert picture.shape == (900, 1600) and picture.std() > 20


@pytest.mark.slow  # (lesson 6.0 twice, shortened: 40 s)
@runs("python mnist_6.0_distributed.py --replicas 4",
      "python mnist_6.0_distributed.py --replicas 1")
def test_lesson_6_on_four_replicas_and_on_one_shortened(lab):
    four, one = test_lesson_6_on_four_replicas_and_on_one_shortened.commands
    out = ran(run(lab, four + SHORTENED))
    assert "; 4 replicas of 25 images each," in out.splitlines()[0]
    assert "(the same for every replica's copy)" in out
    accuracies(out)
    out = ran(run(lab, one + SHORTENED))
    assert "replica" not in out.splitlines()[0]
    accuracies(out)


# ```python blocks run as written, each a script in the lab's folder: what it must leave
# (files of the lab's runs/) and print
RUN_BLOCKS = {
    "docs/your-own-network.md: import lab":
        (["runs/my_network.json", "models/my_network/saved_model.pb"],
         r"final test accuracy: 0\.9"),
    "docs/your-own-network.md: import mnistdata, tensorflowvisu": (["runs/keras_dense.json"], ""),
    "docs/workshop.md: import lab, tensorflowvisu": "in a notebook",
}


@pytest.mark.slow  # (2,000 steps, two epochs of Keras)
@pytest.mark.parametrize("key", sorted(k for k, v in RUN_BLOCKS.items() if v != "in a notebook"))
def test_the_python_blocks_run_as_written(key, histories):
    lab = histories
    files, printed = RUN_BLOCKS[key]
    script = lab / f"block_{abs(hash(key))}.py"
    script.write_text(python_blocks()[key])
    result = run(lab, f"python {script.name}", TF_CPP_MIN_LOG_LEVEL=None)
    out = ran(result)
    assert re.search(printed, out), out[-2000:]
    noise = [line for line in result.stderr.splitlines()
             if re.search(r"cuda|cuInit|oneDNN|^[IWE]0000", line)]
    assert not noise, "the lab's modules come first: TensorFlow loads quietly"
    for name in files:
        assert (lab / name).is_file(), name


@pytest.mark.slow  # (a Jupyter kernel, two lessons of 2,000 steps: a minute)
def test_the_workshops_python_block_in_a_notebook(lab, monkeypatch):
    """docs/workshop.md's block, "the curves, under the cell": one cell of a notebook in the
    lab's folder, in a real kernel with a notebook's defaults (no MPLBACKEND, no display)."""
    import nbformat
    from nbclient import NotebookClient

    for name in ("MPLBACKEND", "DISPLAY", "WAYLAND_DISPLAY", "MNIST_DATA_DIR",
                 "TF_CPP_MIN_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    code = python_blocks()["docs/workshop.md: import lab, tensorflowvisu"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    NotebookClient(nb, kernel_name="python3", timeout=900,
                   resources={"metadata": {"path": str(lab)}}).execute()
    outputs = nb.cells[0].outputs
    assert not [o for o in outputs if o.output_type == "error"]
    printed = "".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stdout")
    assert re.search(r"History\(mnist_2\.1_five_layers_relu: 2,000 steps, "
                     r"max test accuracy 0\.9\d+, final 0\.9\d+\)", printed), printed[-2000:]
    pictures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pictures) >= 5, "two dashboards, the curves, panel 6, the confusion matrix"
