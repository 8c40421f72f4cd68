"""Load scipy's cython_blas without importing all of scipy.linalg.

Cimporting ``scipy.linalg.cython_blas`` makes Python import the
``scipy.linalg`` package first, which pulls in most of scipy.linalg and
doubles ``import fastgrad``'s time.  The extension module needs none of it,
so load it straight from its file (with normal import as the fallback).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys

_NAME = "scipy.linalg.cython_blas"


def preload_cython_blas() -> None:
    if _NAME in sys.modules:
        return
    try:
        spec = importlib.util.find_spec("scipy")
        if spec is None or spec.origin is None:
            return
        folder = os.path.join(os.path.dirname(spec.origin), "linalg")
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(folder, "cython_blas" + suffix)
            if os.path.exists(path):
                break
        else:
            return
        loader = importlib.machinery.ExtensionFileLoader(_NAME, path)
        module_spec = importlib.util.spec_from_file_location(_NAME, path, loader=loader)
        if module_spec is None:
            return
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[_NAME] = module
        try:
            loader.exec_module(module)
        except BaseException:
            sys.modules.pop(_NAME, None)
            raise
    except Exception:
        # Anything unexpected: let the ordinary import (scipy.linalg) happen.
        sys.modules.pop(_NAME, None)
