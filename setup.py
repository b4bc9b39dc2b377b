"""Build the compiled core (fastkin._cy.core), the compiled wire paths (fastkin._cy.wire) and the record
framing of data directories (fastkin._cy.journal, with csrc/crc32c.c).

Modes (environment variables, read at build time):
  FASTKIN_DEBUG=1     -O0 -g, Cython annotate + linetrace + boundscheck, FASTKIN_DEBUG invariants on.
  FASTKIN_SANITIZE=1  AddressSanitizer + UndefinedBehaviorSanitizer (run with LD_PRELOAD of libasan).
Release builds use -O2 and warnings; -ffp-contract=off keeps the token-bucket float arithmetic
bit-identical to the pure-Python reference engine on every CPU (no fused multiply-add).

Switching modes regenerates the C file and rebuilds the extension (the mode of the last build is kept
in build/fastkin-build-mode): the sources are unchanged, so neither Cython nor build_ext would notice.
"""
import os
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

DEBUG = os.environ.get("FASTKIN_DEBUG") == "1"
SANITIZE = os.environ.get("FASTKIN_SANITIZE") == "1"

MODE = f"debug={int(DEBUG)} sanitize={int(SANITIZE)}"
MODE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "build", "fastkin-build-mode")
try:
    with open(MODE_FILE) as f:
        MODE_CHANGED = f.read().strip() != MODE
except OSError:
    MODE_CHANGED = True


class BuildExt(build_ext):
    def finalize_options(self):
        super().finalize_options()
        if MODE_CHANGED:
            self.force = True


cflags = ["-ffp-contract=off", "-Wall", "-Wno-unused-function", "-Wno-unreachable-code"]
ldflags = []
macros = []
directives = {
    "language_level": 3,
    "embedsignature": True,
}
if DEBUG:
    cflags += ["-O0", "-g"]
    macros += [("FASTKIN_DEBUG", "1"), ("CYTHON_TRACE_NOGIL", "1")]
    directives.update(linetrace=True, boundscheck=True, wraparound=True)
else:
    cflags += ["-O2"]
if SANITIZE:
    cflags += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
    ldflags += ["-fsanitize=address,undefined"]

if sys.platform == "win32":  # MSVC does not take gcc flags
    cflags, ldflags = [], []

extensions = [
    Extension(
        "fastkin._cy.core",
        sources=["src/fastkin/_cy/core.pyx", "csrc/md5.c"],
        include_dirs=["csrc"],
        depends=["csrc/md5.h", "csrc/md5_lanes.inc", "csrc/fk_mem.h", "csrc/seqnum.h", "csrc/fastkin_debug.h"],
        define_macros=macros,
        extra_compile_args=cflags,
        extra_link_args=ldflags,
    ),
    Extension(
        "fastkin._cy.journal",
        sources=["src/fastkin/_cy/journal.pyx", "csrc/crc32c.c"],
        include_dirs=["csrc"],
        depends=["csrc/crc32c.h", "src/fastkin/_cy/core.pxd"],
        define_macros=macros,
        extra_compile_args=cflags,
        extra_link_args=ldflags,
    ),
    Extension(
        "fastkin._cy.wire",
        sources=["src/fastkin/_cy/wire.pyx"],
        include_dirs=["csrc"],
        depends=["csrc/seqnum.h", "src/fastkin/_cy/core.pxd"],
        define_macros=macros,
        extra_compile_args=cflags,
        extra_link_args=ldflags,
    ),
]

setup(
    ext_modules=cythonize(extensions, compiler_directives=directives, annotate=DEBUG, force=MODE_CHANGED),
    cmdclass={"build_ext": BuildExt},
)
os.makedirs(os.path.dirname(MODE_FILE), exist_ok=True)
with open(MODE_FILE, "w") as f:
    f.write(MODE + "\n")
