"""Import hygiene: `import fastgrad` pulls in no optional dependency."""

import subprocess
import sys

OPTIONAL = ["sklearn", "matplotlib", "tqdm", "graphviz", "torch", "jax", "threadpoolctl"]


def _modules_after_import(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sys.modules))"],
        check=True, capture_output=True, text=True)
    return set(out.stdout.split())


def test_import_fastgrad_loads_no_optional_dependency():
    modules = _modules_after_import("import fastgrad")
    loaded = [m for m in OPTIONAL if m in modules]
    assert loaded == []


def test_import_fastgrad_does_not_import_all_of_scipy_linalg():
    # Only the BLAS table is needed; scipy.linalg's package init is slow.
    modules = _modules_after_import("import fastgrad")
    assert "scipy.linalg.cython_blas" in modules
    assert "scipy.linalg._basic" not in modules


def test_scipy_linalg_still_imports_after_fastgrad():
    modules = _modules_after_import(
        "import fastgrad\nimport scipy.linalg\nimport numpy as np\n"
        "assert np.allclose(scipy.linalg.inv(np.eye(2) * 2), np.eye(2) / 2)")
    assert "scipy.linalg._basic" in modules


def test_every_public_module_imports_cleanly():
    code = ("import fastgrad, fastgrad.nn, fastgrad.nn.functional, fastgrad.optim, "
            "fastgrad.micrograd, fastgrad.reference, fastgrad.datasets, fastgrad.viz, "
            "fastgrad.compile, fastgrad.lower")
    modules = _modules_after_import(code)
    assert [m for m in OPTIONAL if m in modules] == []
