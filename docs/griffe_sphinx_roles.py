"""A griffe extension for the docs build: Sphinx cross-reference roles in docstrings
(:mod:`engine.server`, :class:`~engine.server.Listener`, ...) become Markdown code spans, so
that mkdocstrings shows `engine.server` instead of the role's markup. Loaded by docs/mkdocs.yml.
"""
from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:mod|class|func|meth|attr|data|exc|obj|const):`~?([^`]+)`")


class SphinxRoles(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and ":" in obj.docstring.value:
            obj.docstring.value = _ROLE.sub(r"`\1`", obj.docstring.value)
