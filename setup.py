"""Build the compiled modules.  All metadata lives in pyproject.toml.

FASTGRAD_DEBUG=1 builds with bounds checking and assertions on, for a debug
test run; the default build is optimised with portable flags only (never
-march=native).
"""

import os
import runpy
import sys
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).resolve().parent
PACKAGE = HERE / "src" / "fastgrad"
DEBUG = os.environ.get("FASTGRAD_DEBUG", "0") not in ("", "0")

# The opcode enum is generated from the op table, the single source of truth.
ops = runpy.run_path(str(PACKAGE / "ops.py"))
opcodes = PACKAGE / "_opcodes.pxi"
source = ops["opcode_enum_source"]()
if not opcodes.exists() or opcodes.read_text() != source:
    opcodes.write_text(source)

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": False,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
}

if sys.platform == "win32":
    compile_args = ["/O2"] if not DEBUG else ["/Od"]
else:
    # -ffp-contract=off: no fused multiply-add, so a fused dot instruction
    # rounds exactly as the chain of additions it replaces, on every CPU.
    compile_args = ["-ffp-contract=off"]
    compile_args += ["-O0", "-g", "-UNDEBUG"] if DEBUG else ["-O3"]

extensions = [
    Extension(
        f"fastgrad.{name}",
        [f"src/fastgrad/{name}.pyx"],
        extra_compile_args=compile_args,
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        include_dirs=[numpy.get_include()],
    )
    for name in ("_value", "_tape", "_kernels", "_blas", "_atape")
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        include_path=["src"],
    ),
)
