"""Build hook for the optional C twin of the DARK decoder.

Everything declarative lives in pyproject.toml. This file only adds the C
extension ``facelm.codec._cdark``. Its build is optional: when no C compiler is
available the install still succeeds and ``facelm.codec.backend()`` reports the
numpy reference (with one logged warning).
"""
import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join("sdk", "codec", "csrc")


class OptionalBuildExt(build_ext):
    """Build extensions, but never fail the install because of them."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # compiler missing or broken
            sys.stderr.write(f"facelm: C codec not built ({exc}); the numpy decoder will be used\n")

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            sys.stderr.write(f"facelm: C codec not built ({exc}); the numpy decoder will be used\n")


def _extensions():
    sources = [os.path.join(CSRC, "facelm_dark.c"), os.path.join(CSRC, "facelm_dark_py.c")]
    if not all(os.path.exists(os.path.join(HERE, s)) for s in sources):
        return []
    return [
        Extension(
            "facelm.codec._cdark",
            sources=sources,
            include_dirs=[CSRC],
            extra_compile_args=["-O3", "-std=c99", "-fno-math-errno"],
        )
    ]


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
