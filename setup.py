"""Build the Cython kernels in pyx/ as extension modules of the wordnet package.

The flags matter: the `exact` backend is bit-identical with the C reference
only if the compiler neither fuses a multiply and an add (-ffp-contract=off)
nor reorders a sum (no -ffast-math).  -fno-trapping-math changes no value: it
lets the compiler turn the branches of the fast exp into vector blends.

The kernels are compiled for x86-64-v3 (AVX2, 2013 onwards) when the building
CPU has it: four doubles per instruction instead of two, 30 % more updates a
second, the same bits (no FMA: -ffp-contract=off forbids it).  WORDNET_MARCH
chooses another -march (``WORDNET_MARCH=x86-64`` for a wheel that runs on any
x86-64; empty for the compiler's default).  ``wordnet._cpu``, built without it,
refuses to load kernels this CPU cannot run, with a message instead of a crash.

The build also stamps the git commit it was built from into ``wordnet/_commit.py``
(in the build folder only): an installed package has no git checkout to ask.
"""
import os
import platform
import subprocess
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_py import build_py

FLAGS = ["-O3", "-ffp-contract=off", "-fno-trapping-math", "-fopenmp"]
# Python's own flags add -g: debug information made the kernels 7.8 MB of a 5.3 MB
# wheel.  GNU ld drops it at link time (2.6 MB wheel); the symbol table stays, so
# profilers still name the functions.
LINK_FLAGS = ["-fopenmp"] + (["-Wl,--strip-debug"] if platform.system() == "Linux" else [])
KERNELS = ["products", "activations", "gradients", "updates", "loop", "objectives", "sampling",
           "sgd", "softmax_step", "wide_loop"]
X86_64_V3 = {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"}


def host_has_x86_64_v3() -> bool:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f
                          if line.startswith("flags")), [])
    except OSError:                       # not Linux: build for the compiler's default
        return False
    return X86_64_V3 <= set(flags)


MARCH = os.environ.get("WORDNET_MARCH", "x86-64-v3" if host_has_x86_64_v3() else "")
ARCH_FLAGS = [f"-march={MARCH}"] if MARCH else []


def extension(name, flags):
    return Extension(
        f"wordnet._{name}",
        [f"pyx/{name}.pyx"],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
                       ("WORDNET_MARCH", f'"{MARCH}"')],
        extra_compile_args=flags,
        extra_link_args=LINK_FLAGS,
    )


def source_commit() -> str:
    """The commit of the source tree being built, or "unknown" (an sdist, no git)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


class build_py_with_commit(build_py):
    """build_py, plus wordnet/_commit.py holding the commit, read by wordnet.tracking."""

    def run(self):
        super().run()
        stamp = Path(self.build_lib) / "wordnet" / "_commit.py"
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(f'"""Written by setup.py at build time."""\nCOMMIT = "{source_commit()}"\n')


setup(
    cmdclass={"build_py": build_py_with_commit},
    ext_modules=cythonize(
        [extension(name, FLAGS + ARCH_FLAGS) for name in KERNELS] + [extension("cpu", ["-O2"])],
        include_path=["."],            # the .pxd declarations live in wordnet/
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    )
)
