"""Package mapping for cogarch.

The user fixed the layout (`cogarch/`, `modules/`, `evals/` at the repository root), but installing
`modules` or `evals` as top-level import names would clash with other packages (`evals` is taken on
PyPI). So both folders are mapped into the cogarch namespace: `modules/perception` installs as
`cogarch.modules.perception`, `evals/world` as `cogarch.evals.world`. Works for regular and editable
installs (setuptools' editable finder honours `package_dir`).
"""

from setuptools import find_packages, setup

ROOTS = {"cogarch": "cogarch", "cogarch.modules": "modules", "cogarch.evals": "evals"}

packages = []
for name, folder in ROOTS.items():
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(folder)]

# cogarch.modules / cogarch.evals are mapped roots, not subfolders of cogarch/: drop duplicates
# find_packages("cogarch") might report if someone adds such folders by mistake.
setup(packages=sorted(set(packages)), package_dir=ROOTS)
