"""Metric names typeset as in the paper: mBO^i and mBO^c become mBO<sup>i</sup> and mBO<sup>c</sup>.

The sources write the two mBO variants as plain text, ``mBO^i`` (instance masks) and ``mBO^c``
(class masks), which reads well in Markdown, in Jupyter and in the library's printed tables. In the
book's pages this transform rewrites them in running text, tables, captions and titles into the
paper's notation with a superscript. Code is left alone: inline code, code blocks, the notebooks'
printed outputs and equations keep what the program prints or the author typed.
"""

from __future__ import annotations

import re

from docutils import nodes
from sphinx.transforms import SphinxTransform

METRIC = re.compile(r"\b(mBO)\^([ic])\b")
# nodes whose text is code or markup, not prose: left as they are
VERBATIM = (nodes.literal, nodes.literal_block, nodes.math, nodes.math_block, nodes.raw,
            nodes.comment, nodes.doctest_block)


def typeset(text: str) -> list[nodes.Node]:
    """`text` as Text nodes, with every mBO^i / mBO^c split into 'mBO' and a superscript."""
    parts: list[nodes.Node] = []
    position = 0
    for match in METRIC.finditer(text):
        if match.start() > position:
            parts.append(nodes.Text(text[position:match.start()]))
        parts.append(nodes.Text(match.group(1)))
        parts.append(nodes.superscript(match.group(2), match.group(2)))
        position = match.end()
    if position < len(text):
        parts.append(nodes.Text(text[position:]))
    return parts


def in_verbatim(node: nodes.Node) -> bool:
    """Whether `node` lies inside code, an equation or raw markup."""
    parent = node.parent
    while parent is not None:
        if isinstance(parent, VERBATIM):
            return True
        parent = parent.parent
    return False


class MetricNames(SphinxTransform):
    """Replace mBO^i / mBO^c in every prose Text node of a page by mBO with a superscript."""

    default_priority = 500

    def apply(self, **kwargs) -> None:
        found = [text for text in self.document.findall(nodes.Text)
                 if METRIC.search(text.astext()) and not in_verbatim(text)]
        for text in found:
            text.parent.replace(text, typeset(text.astext()))


def setup(app):
    app.add_transform(MetricNames)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
