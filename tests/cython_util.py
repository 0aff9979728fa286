"""Building a Cython module that cimports engine's .pxd files, as a user's extension would: the
tests of engine's Cython API (tests/test_cython_api.py, tests/http/test_http_cython_hooks.py,
tests/h2/test_h2_cython_hooks.py, tests/h2/test_hpack_cython.py) each compile one."""
from __future__ import annotations

import contextlib
import importlib
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

SETUP = textwrap.dedent('''
    from setuptools import setup, Extension
    from Cython.Build import cythonize
    setup(name="engine_test_{name}", script_args=["build_ext", "--inplace", "-q"],
          ext_modules=cythonize([Extension("{name}", ["{name}.pyx"])], quiet=True))
''')


@contextlib.contextmanager
def cython_module(directory: Path, name: str, source: str) -> Iterator[object]:
    """Compile ``source`` as the extension module ``name`` in ``directory`` (setuptools +
    Cython, as a consumer builds against the installed engine) and import it; it is importable
    for the duration of the ``with``. A failed build fails the test with the compiler's
    output."""
    (directory / f"{name}.pyx").write_text(source)
    (directory / "setup.py").write_text(SETUP.format(name=name))
    proc = subprocess.run([sys.executable, "setup.py"], cwd=directory, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sys.path.insert(0, str(directory))
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(directory))
