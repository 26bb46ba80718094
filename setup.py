"""Build the Cython kernels in pyx/ as extension modules of the wordnet package.

The flags matter: the `exact` backend is bit-identical with the C reference
only if the compiler neither fuses a multiply and an add (-ffp-contract=off)
nor reorders a sum (no -ffast-math).  -fno-trapping-math changes no value: it
lets the compiler turn the branches of the fast exp into vector blends.
"""
import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

FLAGS = ["-O3", "-ffp-contract=off", "-fno-trapping-math", "-fopenmp"]
KERNELS = ["products", "activations", "gradients", "updates", "loop"]

extensions = [
    Extension(
        f"wordnet._{name}",
        [f"pyx/{name}.pyx"],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=FLAGS,
        extra_link_args=["-fopenmp"],
    )
    for name in KERNELS
]

setup(
    ext_modules=cythonize(
        extensions,
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
