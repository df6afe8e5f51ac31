"""The lab in a Jupyter notebook: real kernels (ipykernel), driven by nbclient.

A notebook cell's picture is a message from the kernel: a display_data, then
update_display_data messages that replace it in place. An executed notebook keeps only
the last one per display, so the kernel's messages are recorded as they arrive.
The kernel gets the notebook defaults: no MPLBACKEND (ipykernel's inline backend), no
display, no magic. Lessons, Keras' fit with the dashboard, lab.train_model, the workshop
notebook and its "your turn" cell run in real kernels.
"""
import base64
import io
import json
import re
import shutil
import textwrap

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient
from PIL import Image

import plumbing
from conftest import ROOT, drawn_digit
from history import History


class RecordingClient(NotebookClient):
    """nbclient, keeping every message the kernel sends: (cell index, type, content)."""

    def __init__(self, nb, **kwargs):
        super().__init__(nb, kernel_name="python3", timeout=600, **kwargs)
        self.messages = []

    def process_message(self, msg, cell, cell_index):
        self.messages.append((cell_index, msg["msg_type"], msg["content"]))
        return super().process_message(msg, cell, cell_index)

    def pictures(self, cell_index):
        """The PNG pictures that cell showed or updated, in order: (message type, Image)."""
        return [(kind, Image.open(io.BytesIO(base64.b64decode(content["data"]["image/png"]))))
                for index, kind, content in self.messages
                if index == cell_index and kind in ("display_data", "update_display_data")
                and "image/png" in content.get("data", {})]

    def streams(self, name):
        """Everything the cells printed on stdout or stderr."""
        return "".join(content["text"] for _, kind, content in self.messages
                       if kind == "stream" and content["name"] == name)


@pytest.fixture
def notebook_env(monkeypatch, mnist_dir):
    """The kernel's environment: a user's notebook, with real MNIST."""
    monkeypatch.setenv("MNIST_DATA_DIR", mnist_dir)
    for name in ("MPLBACKEND", "DISPLAY", "WAYLAND_DISPLAY", "TF_CPP_MIN_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)


def run_cells(*sources, cwd=ROOT):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    client = RecordingClient(nb, resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return client, nb


@pytest.mark.slow
def test_run_a_lesson_shows_its_dashboard_under_the_cell_updated_in_place(notebook_env, tmp_path):
    out = {"history": tmp_path / "run.json", "save-model": tmp_path / "model"}
    flags = " ".join(f"--{k} {v}" for k, v in out.items())
    drawn_digit(7, 90).save(tmp_path / "seven.png")
    client, nb = run_cells(
        f"import tensorflowvisu\n%run mnist_2.1_five_layers_relu.py --steps 600 {flags}",
        f"%run tensorflowvisu.py compare {out['history']}",
        f"%run predict.py --model {out['save-model']} {tmp_path / 'seven.png'} --show",
        # lessons run again and again in one kernel: quietly
        *[f"%run mnist_1.0_softmax.py --steps 20 {flags}" for _ in range(3)],
        f"from history import History\nHistory.load(r'{out['history']}')",
        # a finished run's panel 6, large (the history keeps the indices of the misread digits),
        # from a dashboard fed by a loop of one's own
        "import numpy as np, mnistdata\n"
        "test = mnistdata.read_data_sets(reshape=False, validation_size=0).test\n"
        "dashboard = tensorflowvisu.Dashboard('made up', 100, live=False)\n"
        "dashboard.show_panels(6)  # its figure: the panels take the digits\n"
        "misread = np.arange(10_000) % 40 == 0\n"
        "predictions = np.where(misread, (test.labels + 1) % 10, test.labels)\n"
        "dashboard.test(100, 1 - misread.mean(), 0.1, images=test.images, labels=test.labels,\n"
        "               predictions=predictions)\n"
        "dashboard.save()  # keeps the pictures in its history\n"
        "tensorflowvisu.show_panel(dashboard.history, 6)",
    )
    pictures = client.pictures(0)
    kinds = [kind for kind, _ in pictures]
    assert kinds[0] == "display_data" and kinds.count("update_display_data") >= 2, kinds
    assert set(kinds[1:]) == {"update_display_data"}
    first, last = pictures[0][1], pictures[-1][1]
    assert last.size == (928, 522), "as wide as JupyterLab's output area"
    assert first.info["Title"] == "mnist_2.1_five_layers_relu: starting"
    assert last.info["Title"] == "mnist_2.1_five_layers_relu: step 600 of 600", "final state"
    assert np.asarray(last.convert("L"), dtype=float).std() > 20
    assert "final test accuracy: 0." in client.streams("stdout")

    for cell in (1, 2, 7):  # compare, predict.py --show and show_panel: their picture, inline
        assert [kind for kind, _ in client.pictures(cell)] == ["display_data"]
        assert np.asarray(client.pictures(cell)[0][1].convert("L"), dtype=float).std() > 20
    panel = np.asarray(client.pictures(7)[0][1].convert("RGB"), dtype=int)
    assert panel.shape == (522, 928, 3)
    red = np.abs(panel - (255, 140, 140)).max(axis=-1) <= 3  # pictures.ERROR_BACKGROUND
    assert red.sum() > 25_000, "250 misread digits, large"
    summary, = [c["data"]["text/plain"] for i, kind, c in client.messages
                if i == 6 and kind == "execute_result"]
    assert re.fullmatch(r"History\(mnist_1\.0_softmax: 20 steps, "
                        r"max test accuracy 0\.\d{4}, final 0\.\d{4}\)", summary), summary

    # quiet: no TensorFlow start-up lines, no INFO lines, no retracing warnings, nothing on stderr
    assert client.streams("stderr") == ""
    stdout = client.streams("stdout")
    assert ("INFO:" not in stdout and "retracing" not in stdout
            and "oneDNN custom operations" not in stdout)
    assert not [o for cell in nb.cells for o in cell.outputs if o.output_type == "error"]


def widget_displays(client, cell_index):
    """The widgets a cell showed: [(message type, model id, content)]."""
    return [(kind, c["data"]["application/vnd.jupyter.widget-view+json"]["model_id"], c)
            for i, kind, c in client.messages if i == cell_index
            and kind in ("display_data", "update_display_data")
            and "application/vnd.jupyter.widget-view+json" in c["data"]]


def blue_pixels(png_base64):
    """How many pixels have the test curves' blue: the longer the curves, the more."""
    image = Image.open(io.BytesIO(base64.b64decode(png_base64))).convert("RGB")
    image = np.asarray(image, dtype=int)
    return int((np.abs(image - (0x00, 0x72, 0xb2)).max(axis=-1) <= 10).sum())


@pytest.mark.slow
def test_matplotlib_widget_dashboard_is_the_picture_and_finished_runs_are_widgets(
        notebook_env, tmp_path):
    """%matplotlib widget (ipympl): ipympl's canvas paints only when the browser's messages
    are answered, which a kernel busy training does not do, so the dashboard is the same
    picture as inline, replaced in place while the network trains (tests/test_browser.py
    watches it in a real browser). Figures of finished runs are widgets, each shown once,
    never again in later cells, and no wider than a notebook's output area."""
    history = tmp_path / "h.json"
    client, nb = run_cells(
        "%matplotlib widget",
        f"%run mnist_1.0_softmax.py --steps 300 --history {history} --save-model {tmp_path / 'm'}",
        f"import tensorflowvisu\ntensorflowvisu.confusion(r'{history}')",
        f"%run tensorflowvisu.py compare {history}",
        "print('a later cell')")
    assert not [c for i, kind, c in client.messages if i == 1 and kind == "comm_open"], \
        "no canvas for the dashboard"
    pictures = client.pictures(1)
    assert [kind for kind, _ in pictures][:1] == ["display_data"] and len(pictures) >= 2
    assert {kind for kind, _ in pictures[1:]} == {"update_display_data"}, "replaced in place"

    confusion, compare = widget_displays(client, 2), widget_displays(client, 3)
    assert len(confusion) == len(compare) == 1, "each figure once, under its cell"
    assert confusion[0][1] != compare[0][1], "the compare cell shows its own figure only"
    widths = run_cells("%matplotlib widget\nimport figures\n"
                       "for size in ((16, 9), (14, 9), (10, 6)):\n"
                       "    print(figures.window_figure(size, 'x').canvas.get_width_height()[0])")
    assert [int(w) for w in widths[0].streams("stdout").split()] == [928, 928, 720], \
        "no wider than a notebook's output area (928 px), nor wider than on a screen"
    assert not [kind for i, kind, _ in client.messages
                if i == 4 and kind in ("display_data", "update_display_data")], "no figure again"
    assert client.streams("stderr") == ""


@pytest.mark.slow
def test_the_workshop_notebook_runs_top_to_bottom(notebook_env, tmp_path):
    """On a copy of the lab: its lessons write their histories and models next to themselves."""
    for path in [*ROOT.glob("*.py"), ROOT / "workshop.ipynb"]:
        shutil.copy(path, tmp_path)
    nb = nbformat.read(tmp_path / "workshop.ipynb", as_version=4)
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), \
        "committed without outputs"
    # Every lesson cell runs the fraction of its steps that the settings cell chooses
    fractions = {m for cell in nb.cells if "lab.run(" in cell.source
                 for m in re.findall(r"lab\.run\([^)]*\bfraction=(\w+)\)", cell.source)}
    assert len(fractions) == 1, "lab.run(lesson, fraction=NAME), NAME set in the settings cell"
    name, = fractions
    settings = nb.cells[1]
    assert f"{name} = 1\n" in settings.source, "the lessons' own number of steps by default"
    # 20 steps each (the fewest a lesson runs)
    settings.source = settings.source.replace(f"{name} = 1\n", f"{name} = 0.001\n")
    nb.cells.append(nbformat.v4.new_code_cell(
        "import json\n"
        "print(json.dumps({k: [r.final['steps'], r.test['loss'][0], r.test['loss'][-1]]"
        " for k, r in runs.items()}))"))
    client = RecordingClient(nb, resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    runs = json.loads(nb.cells[-1].outputs[0]["text"])
    lessons = sorted(p.name.split("_")[1] for p in ROOT.glob("mnist_*.py")  # (5.2 votes: no run)
                     if "lab.train(" in p.read_text())
    written = sorted(p.name for p in (tmp_path / "runs").glob("*.json"))
    assert len(written) == len(lessons) + 1 and "my_keras_network.json" in written, \
        "the copy's runs/, not the repository's: every lesson's, and the Keras network's"
    assert sorted(runs) == [*lessons, "my Keras network"], "every lesson, and its history"
    # 20 steps: every lesson has learned something. Its test loss fell (its accuracy
    # may still be at chance: 2.0's sigmoids start slowly).
    assert all(steps >= 20 and last < first for steps, first, last in runs.values()), runs
    seen = next(i for i, cell in enumerate(nb.cells) if "explain.show(" in cell.source)
    assert len(client.pictures(seen)) == 1, "what the trained 3.0 network sees, under the cell"
    keras_cell = next(i for i, cell in enumerate(nb.cells) if "DashboardCallback(" in cell.source)
    kinds = [kind for kind, _ in client.pictures(keras_cell)]
    assert kinds[0] == "display_data" and kinds[-1] == "update_display_data", kinds
    lesson_cells = [i for i, cell in enumerate(nb.cells)
                    if cell.source.startswith("runs[") and "lab.run(" in cell.source]
    assert len(lesson_cells) == len(lessons) - 1, \
        "every lesson but 6.0, which needs processes of its own"
    ensemble = next(i for i, cell in enumerate(nb.cells)
                    if cell.cell_type == "code" and "mnist_5.2_ensemble.py" in cell.source)
    assert "ensemble test accuracy: 0." in "".join(
        c["text"] for i, kind, c in client.messages if i == ensemble and kind == "stream")
    assert len(client.pictures(ensemble)) == 1, "the ensemble's gain per member, under the cell"
    for i in lesson_cells:
        kinds = [kind for kind, _ in client.pictures(i)]
        assert kinds and kinds[0] == "display_data" and kinds[-1] == "update_display_data", \
            (i, kinds)
    compare = next(i for i, cell in enumerate(nb.cells)  # (not a your-turn cell's)
                   if cell.source.startswith("tensorflowvisu.compare("))
    assert len(client.pictures(compare)) == 1
    assert client.streams("stderr") == ""
    # 6.0 runs as a command (`!python ...`): its output, TensorFlow's C++ lines included,
    # is the cell's stdout; the kernel's earlier runs set TF_CPP_MIN_LOG_LEVEL=2 for it.
    assert not re.search(r"cuInit|^[EWI]\d{4} ", client.streams("stdout"), re.MULTILINE)


@pytest.mark.slow
def test_keras_fit_and_train_model_in_a_real_notebook_kernel(tmp_path, mnist_dir, monkeypatch):
    import nbformat

    monkeypatch.setenv("MNIST_DATA_DIR", mnist_dir)
    for name in ("MPLBACKEND", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    cells = [
        "import keras, mnistdata, lab, tensorflowvisu\n"
        "tensorflowvisu.NOTEBOOK_BUDGET = 1  # a short fit: room for pictures while it runs\n"
        "mnist = mnistdata.read_data_sets(reshape=False, validation_size=0)\n"
        "x, y = mnist.train.images[:6000], mnist.train.labels[:6000]\n"
        "model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),\n"
        "                          keras.layers.Dense(64, activation='relu'),"
        " keras.layers.Dense(10)])\n"
        "model.compile('adam', keras.losses.SparseCategoricalCrossentropy(from_logits=True),\n"
        "              metrics=['accuracy'])",
        f"dashboard = tensorflowvisu.DashboardCallback(\n"
        f"    (mnist.test.images, mnist.test.labels), (x, y), name='nb_keras', test_every=20,\n"
        f"    history=r'{tmp_path / 'keras.json'}')\n"
        f"model.fit(x, y, batch_size=100, epochs=2, callbacks=[dashboard], verbose=0)\n"
        f"dashboard.history",
        "lab.parse_args(None, steps=200)",
        textwrap.dedent(f"""\
            import tensorflow as tf
            args = lab.parse_args(None, steps=200, name='nb_model')
            print(args.name, args.steps, args.history.endswith('nb_model.json'))
            optimizer = keras.optimizers.Adam(0.003)

            @tf.function
            def train_step(X, Y_):
                with tf.GradientTape() as tape:
                    loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(
                        labels=Y_, logits=model(X, training=True)))
                variables = model.trainable_variables
                optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))

            lab.train_model(model, train_step, optimizer, name='nb_model', steps=100,
                            history=r'{tmp_path / "lab.json"}', save_model=r'{tmp_path / "m"}')
        """),
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = RecordingClient(nb, allow_errors=True, resources={"metadata": {"path": str(ROOT)}})
    client.execute()
    errors = [(i, o) for i, cell in enumerate(nb.cells) for o in cell.outputs
              if o.output_type == "error"]
    assert [(i, o.ename) for i, o in errors] == [(2, "UserError")], errors
    shown = errors[0][1].traceback  # what the notebook shows: the one line
    assert shown == ['error: in a notebook, name the run: lab.parse_args(..., name="my_network")'
                     ' (it titles the dashboard and names runs/NAME.json, models/NAME/)']

    for cell, title in ((1, "nb_keras: step 120 of 120"), (3, "nb_model: step 100 of 100")):
        pictures = client.pictures(cell)
        kinds = [kind for kind, _ in pictures]
        assert kinds[0] == "display_data" and kinds.count("update_display_data") >= 2, kinds
        assert pictures[-1][1].info["Title"] == title
    result, = [c["data"]["text/plain"] for i, kind, c in client.messages
               if i == 1 and kind == "execute_result"]
    assert re.fullmatch(r"History\(nb_keras: 120 steps, max test accuracy 0\.[89]\d{3}, "
                        r"final 0\.[89]\d{3}\)", result), result
    assert History.load(tmp_path / "keras.json").test["step"] == list(range(0, 121, 20))
    assert "nb_model 200 True" in client.streams("stdout")
    assert History.load(tmp_path / "lab.json").name == "nb_model"


@pytest.mark.slow
def test_the_notebooks_your_turn_cell_checks_then_trains_and_compares(
        tmp_path, monkeypatch, mnist_dir):
    """workshop.ipynb's own cells, with EXERCISES = True, in a real kernel, in a copy of the
    lab: the first run of lesson 1.0's "your turn" cell makes the starting file and says what
    to fix; once the file is right, the same cell trains it and shows the comparison."""
    import shutil

    import nbformat
    from nbclient import NotebookClient

    for path in [*ROOT.glob("*.py"), ROOT / "workshop.ipynb", ROOT / "README.md"]:
        shutil.copy(path, tmp_path)
    monkeypatch.setenv("MNIST_DATA_DIR", mnist_dir)
    for name in ("MPLBACKEND", "DISPLAY", "TF_CPP_MIN_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    workshop = nbformat.read(tmp_path / "workshop.ipynb", as_version=4)
    settings = workshop.cells[1].source
    assert "FRACTION = 1\n" in settings and "EXERCISES = False\n" in settings
    lesson, = [c.source for c in workshop.cells if c.source.startswith('runs["1.0"] = lab.run(')]
    turn, = [c.source for c in workshop.cells if 'exercises.start("1.0")' in c.source]
    finished = plumbing.lessons()["1.0"].read_text()
    cells = [settings.replace("FRACTION = 1\n", "FRACTION = 0.02\n")
             .replace("EXERCISES = False\n", "EXERCISES = True\n"),
             lesson, turn, f"open('my_mnist_1.0.py', 'w').write({finished!r})", turn,
             "print(sorted(runs), runs['my 1.0'].final['steps'])"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, kernel_name="python3", timeout=600,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()

    def printed(cell):
        return "".join(o.get("text", "") for o in nb.cells[cell].outputs
                       if o.output_type == "stream")

    assert not [o for cell in nb.cells for o in cell.outputs if o.output_type == "error"]
    first, again = printed(2), printed(4)
    assert first.startswith(f"{tmp_path / 'my_mnist_1.0.py'}\nexercise 1.0: do the task")
    assert "  structure  to fix: model(X) is not written yet" in first and "training" not in first
    assert "already there, your work: it is kept" in again
    assert "done: my_mnist_1.0.py is lesson 1.0's network" in again
    assert [o.output_type for o in nb.cells[4].outputs].count("display_data") >= 2, \
        "your run's dashboard, then the comparison"
    assert printed(5).strip() == "['1.0', 'my 1.0'] 40", "your file ran at the notebook's FRACTION"
