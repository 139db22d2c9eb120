"""Alt text that says what a figure shows: an executed figure's image gets its caption's text (or,
without a caption, the sentence before it) instead of its hashed file name; so does the image of
a figure that reflows on a phone (``mamlscope.publish.plots.reflow_html``, an HTML output)."""
import html

from docutils import nodes
from sphinx.transforms.post_transforms import SphinxPostTransform


def _hashed(alt: str) -> bool:
    return not alt or alt.endswith((".png", ".svg", ".jpg", ".jpeg")) or "_images/" in alt


class FigureAltText(SphinxPostTransform):
    default_priority = 900

    def run(self, **kwargs):
        for image in self.document.findall(nodes.image):
            if not _hashed(image.get("alt", "")):
                continue
            figure = image.parent if isinstance(image.parent, nodes.figure) else next(
                (a for a in _ancestors(image) if isinstance(a, nodes.figure)), None)
            caption = next(iter(figure.findall(nodes.caption)), None) if figure is not None else None
            text = caption.astext() if caption is not None else _previous_paragraph(image)
            image["alt"] = " ".join(text.split())[:300] or "a figure computed by the cell above"
        for raw in self.document.findall(nodes.raw):
            source = raw.astext()
            if raw.get("format") != "html" or '<picture class="reflow"' not in source or 'alt=""' not in source:
                continue
            figure = next((a for a in _ancestors(raw) if isinstance(a, nodes.figure)), None)
            caption = next(iter(figure.findall(nodes.caption)), None) if figure is not None else None
            text = caption.astext() if caption is not None else _previous_paragraph(raw)
            alt = html.escape(" ".join(text.split())[:300] or "a figure computed by the cell above")
            raw.children = [nodes.Text(source.replace('alt=""', f'alt="{alt}"', 1))]


def _ancestors(node):
    while node.parent is not None:
        node = node.parent
        yield node


def _previous_paragraph(image) -> str:
    """The text of the last paragraph before the image's cell, or ""."""
    cell = next((a for a in _ancestors(image) if "cell" in a.get("classes", [])), image)
    parent = cell.parent
    if parent is None:
        return ""
    before = parent.children[:parent.index(cell)]
    para = next((n for n in reversed(before) if isinstance(n, nodes.paragraph)), None)
    return para.astext() if para is not None else ""


def setup(app):
    app.add_post_transform(FigureAltText)
    return {"parallel_read_safe": True}
