"""Griffe extension for the API reference: render ``Example:`` sections as examples.

Griffe's Google-style parser treats a singular ``Example:`` heading as an
admonition, so the ``>>>`` lines inside become nested Markdown blockquotes.
The plural ``Examples:`` is parsed as doctest code. The docstrings in
``dsg_lib`` use the singular form; this extension renames the heading before
the docstring is parsed, so the examples render as highlighted code.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE_HEADING = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rewrite ``Example:`` section headings to ``Examples:``."""

    def on_instance(self, *, node: Any, obj: griffe.Object, agent: Any, **kwargs: Any) -> None:
        docstring = obj.docstring
        if docstring is not None and "Example:" in docstring.value:
            docstring.value = _EXAMPLE_HEADING.sub(r"\1Examples:", docstring.value)
