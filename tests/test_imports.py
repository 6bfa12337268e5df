"""The package's import graph: no cycles, a lazy top level, light low layers.

Each module is imported alone in a fresh interpreter: a cycle between two modules shows up
as an ImportError when the import starts from the wrong one, whatever the test order.
"""

from __future__ import annotations

import concurrent.futures
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import rxtokens

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = ("llama_cpp", "gguf", "openai", "anthropic", "botocore", "IPython", "numpy")
"""Extras a module may need; without them its import fails with ProviderNotInstalledError."""


def _modules() -> list[str]:
    names = ["rxtokens"]
    for info in pkgutil.walk_packages(rxtokens.__path__, "rxtokens."):
        if not info.name.endswith("__main__"):
            names.append(info.name)
    return sorted(names)


def _import_alone(module: str) -> tuple[str, int, str]:
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    return module, done.returncode, done.stderr


@pytest.mark.timeout(300)
def test_every_module_imports_alone_in_a_fresh_interpreter() -> None:
    modules = _modules()
    assert len(modules) > 80
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(_import_alone, modules))
    failures = [
        f"{module}:\n{stderr.strip().splitlines()[-1] if stderr.strip() else '?'}"
        for module, code, stderr in results
        if code != 0 and not any(f"'{extra}'" in stderr for extra in OPTIONAL)
    ]
    assert not failures, "\n".join(failures)


LIGHT = {
    "rxtokens": [],
    "rxtokens.sse": [],
    "rxtokens.tokens": [],
    "rxtokens.errors": [],
    "rxtokens.eventstream": [],
    "rxtokens.formats.events": [],
}
HEAVY = ("aiohttp", "pydantic", "pydantic_core", "tiktoken", "reactivex", "regex")


@pytest.mark.parametrize("module", sorted(LIGHT))
def test_low_layers_load_no_heavy_dependency(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
        "print(','.join(sorted(m for m in sys.modules if m.startswith('rxtokens.'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    heavy, ours = done.stdout.splitlines()
    assert heavy == "", f"import {module} loaded {heavy}"
    assert "rxtokens.testing" not in ours


def test_the_top_level_resolves_every_public_name_lazily() -> None:
    code = (
        "import sys, rxtokens\n"
        "assert 'rxtokens.broadcast' not in sys.modules\n"
        "names = rxtokens.__all__\n"
        "assert names == sorted(names, key=str.lower) or names == sorted(names)\n"
        "for name in names:\n"
        "    assert getattr(rxtokens, name) is not None, name\n"
        "assert set(names) <= set(dir(rxtokens))\n"
        "print(type(rxtokens.Broadcast).__name__)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "type"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = rxtokens.nope  # type: ignore[attr-defined]
