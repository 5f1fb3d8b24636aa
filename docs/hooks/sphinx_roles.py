"""Griffe extension: Sphinx cross-reference roles in docstrings become inline code.

The package's docstrings name objects as ``:class:`~playspeed.data.PretextGrid``` (the
Sphinx habit, readable as plain text); Markdown would show the role literally. Each role
becomes the object's name in backticks, the last component only where the target starts
with ``~``, as Sphinx shows it.
"""

from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj|const):`(~?)([^`]+)`")


def _shown(match: re.Match) -> str:
    short, target = match.group(1), match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


def replace_roles(text: str) -> str:
    """``:class:`~a.b.C``` -> ```C```, ``:func:`a.f``` -> ```a.f```."""
    return ROLE.sub(_shown, text)


class SphinxRoles(griffe.Extension):
    """Rewrites the roles of every docstring as it is loaded."""

    def on_instance(self, **kwargs) -> None:
        obj = kwargs["obj"]
        if obj.docstring is not None:
            obj.docstring.value = replace_roles(obj.docstring.value)
