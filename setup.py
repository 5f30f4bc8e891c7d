"""Builds lstmkit's compiled recurrent core (src/lstmkit/_core) as an optional extension.

Everything else is in pyproject.toml. Without a working C compiler the install goes on and
says so in one line: the recurrent layers then run on their NumPy kernels.
"""

import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """build_ext that never fails the install: the core is an optional speed-up."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as e:                                      # no compiler at all
            self._skip(e)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as e:                                      # the compiler failed
            self._skip(e)

    @staticmethod
    def _skip(e: Exception) -> None:
        first = str(e).splitlines()[0] if str(e) else ""
        print(f"lstmkit: the compiled core was not built ({type(e).__name__}: {first}); the recurrent layers will "
              "run on NumPy", file=sys.stderr)


core = Extension(
    "lstmkit._core._lstmcore",
    sources=["src/lstmkit/_core/kernels.c", "src/lstmkit/_core/pool.c", "src/lstmkit/_core/ctc.c",
             "src/lstmkit/_core/image.c", "src/lstmkit/_core/optim.c"],
    depends=[f"src/lstmkit/_core/{h}.h"
             for h in ("body", "cells", "conv", "core", "isa", "vec", "bf16", "matvec", "scan", "wgrad")],
    extra_compile_args=["-O3", "-fno-math-errno", "-Wno-psabi", "-std=gnu11", "-Werror=implicit-function-declaration"],
    libraries=["m", "pthread"],
    optional=True,
)

setup(ext_modules=[core], cmdclass={"build_ext": OptionalBuildExt})
