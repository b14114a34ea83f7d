"""edgefarm's training side: distil a teacher into small students and export artifacts the farm can gate.

Optional extra (`pip install edgefarm[distill]`, which pins torch==2.13.0). Nothing in harness/ or agents/
imports this package.
"""

from __future__ import annotations

__all__ = ["__version__"]
__version__ = "0.1.0"
