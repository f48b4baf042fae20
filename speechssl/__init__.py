"""speechssl: self-supervised speech representations.

Importing the package has no side effects: no global registries, no logging setup, no heavy imports
beyond what a submodule you import needs.
"""

__version__ = "0.1.0"
