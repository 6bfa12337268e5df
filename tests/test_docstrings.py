"""Every public class and function of `rxtokens` documents itself with an example."""

from __future__ import annotations

import inspect

import rxtokens


def test_every_public_class_and_function_has_an_example() -> None:
    missing = [
        name
        for name in rxtokens.__all__
        if name != "__version__"
        and (inspect.isclass(value := getattr(rxtokens, name)) or inspect.isfunction(value))
        and "Example" not in (value.__doc__ or "")
    ]
    assert not missing, f"public names whose docstring has no Example: {missing}"
