"""The model runner: serves a model bundle over REST and hot-swaps it at run time.

This package must stay free of Django and of the portal: it runs inside every model image.
"""

__version__ = "0.1.0"
