"""The notebooks in ``notebooks/`` run top to bottom, and are committed without outputs.

Each notebook is executed with nbclient in a fresh IPython kernel that runs
*this* interpreter (a kernelspec written to a temporary directory whose argv
is ``sys.executable``, so a ``python3`` kernelspec of another Python on the
machine can never be picked up). A failing cell fails the test with the
cell's source and traceback.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import time
from pathlib import Path

import nbclient
import nbformat
import pytest
from nbclient.exceptions import CellExecutionError, CellTimeoutError

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = [
    "01_quickstart.ipynb",
    "02_operators_tour.ipynb",
    "03_ui_callbacks_fanout.ipynb",
    "04_property_testing_sse.ipynb",
    "05_local_llama.ipynb",
    "06_inflight_tools.ipynb",
    "07_ai_sdk_chat.ipynb",
]
CELL_TIMEOUT = 60  # seconds per cell
KERNEL_NAME = "rxtokens-test-python"

_ANSI = re.compile(r"\x1b\[[0-9;]*m")

# notebooks that need an optional package
REQUIRES = {"05_local_llama.ipynb": "llama_cpp"}


@pytest.fixture(scope="module")
def jupyter_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Jupyter data dir with a kernelspec that starts IPython on this very interpreter."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "rxtokens tests",
                "language": "python",
                "metadata": {"debugger": False},
            }
        )
    )
    return root


def test_the_kernel_runs_this_interpreter(
    jupyter_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jupyter_client.kernelspec import KernelSpecManager

    monkeypatch.setenv("JUPYTER_PATH", str(jupyter_dir))
    assert KernelSpecManager().get_kernel_spec(KERNEL_NAME).argv[0] == sys.executable


def test_all_notebooks_are_there() -> None:
    assert [p.name for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {index} of {path.name} has outputs: clear them"
            assert cell.execution_count is None, f"cell {index} of {path.name} has a count"
        assert "widgets" not in nb.metadata, "widget state is an output too"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path: Path, jupyter_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    needed = REQUIRES.get(path.name)
    if needed is not None and importlib.util.find_spec(needed) is None:
        pytest.skip(f"{path.name} needs {needed}")
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter_dir))  # searched first for kernelspecs
    # the kernel inherits the environment: keep Hypothesis' caches out of notebooks/
    monkeypatch.setenv("HYPOTHESIS_STORAGE_DIRECTORY", str(jupyter_dir / "hypothesis"))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        startup_timeout=60,
        kernel_name=KERNEL_NAME,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    started = time.monotonic()
    try:
        client.execute()
    except CellTimeoutError as exc:
        pytest.fail(f"{path.name}: a cell ran longer than {CELL_TIMEOUT} s:\n{exc}", pytrace=False)
    except CellExecutionError as exc:  # its message has the cell's source and traceback
        pytest.fail(f"{path.name}: a cell failed:\n{_ANSI.sub('', str(exc))}", pytrace=False)
    elapsed = time.monotonic() - started
    # every code cell ran, in order
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1))
    print(f"{path.name}: {elapsed:.1f} s")
