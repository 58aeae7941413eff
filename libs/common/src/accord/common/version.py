"""Accord's version: the one place it is written.

Every Python package reads it at build time (``[tool.hatch.version]`` in its
``pyproject.toml``); ``accord --version`` and the edge's ``welcome.server.version``
read it at run time. ``tests/deploy/test_dist.py`` checks that the JavaScript
SDK's ``package.json``, its ``VERSION`` and the charts' ``appVersion`` agree.
"""

__version__ = "0.1.0"
