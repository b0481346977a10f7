"""The book shows the notebooks' "Open in Colab" badge from its own files.

Each notebook's first cell links its badge image from colab.research.google.com, which is right
on GitHub and in Colab but needs the network in the book. This extension swaps that one image, in
the book's pages only, for book/_static/colab-badge.svg; the notebooks themselves are unchanged.
"""

from __future__ import annotations

from docutils import nodes
from sphinx.transforms import SphinxTransform

REMOTE_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
LOCAL_BADGE = "/_static/colab-badge.svg"   # a leading / means: relative to the book's folder


class LocalColabBadge(SphinxTransform):
    """Point every image node with the remote badge at the local copy."""

    default_priority = 400

    def apply(self, **kwargs) -> None:
        for image in self.document.findall(nodes.image):
            if image.get("uri") == REMOTE_BADGE:
                image["uri"] = LOCAL_BADGE
                if "candidates" in image:
                    del image["candidates"]


def setup(app):
    app.add_transform(LocalColabBadge)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
