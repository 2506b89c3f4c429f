"""The book's own Sphinx extension (registered in ``_config.yml``); nothing here needs a network or JavaScript.

- **Figures.** Every image in a notebook's cell output links to its full-size PNG (the file Sphinx copies
  into ``_images/``, so the link opens from ``file://`` too), and gets real alt text: the ``alt`` (else the
  caption) that :func:`priorlib.compendium.figures.show` stored in the output's metadata, else a sentence
  naming the chapter, never the hash file name.
- **Titles.** Chapter headings read ``NN · Title`` in the sidebar and on the page
  (:func:`priorlib.compendium.provenance.normalise_title`).
- **Provenance.** A chapter whose commit or tree state differs from the rest of the book
  (:func:`priorlib.compendium.provenance.odd_ones`) opens with a warning; when any chapter's provenance
  changes, every chapter is read again, so no page keeps a stale warning.
"""
from __future__ import annotations

import base64
import hashlib
import html
import json
import posixpath
import urllib.parse
from pathlib import Path

from docutils import nodes

from priorlib.compendium import provenance

FULLSIZE_TEXT = "full-size PNG"


class fullsize(nodes.General, nodes.Element):
    """An image wrapped in a link to its own file (the URI Sphinx gave it in ``_images/``)."""


def _image_of(node) -> nodes.image | None:
    return next(iter(node.findall(nodes.image)), None)


def _final_uri(translator, uri: str) -> str:
    """The URI the HTML translator gives the image (Sphinx copies it into ``_images/`` and rewrites its
    ``src`` only when the image itself is visited, after this wrapper)."""
    images = getattr(translator.builder, "images", {})
    if uri in images:
        return posixpath.join(translator.builder.imgpath, urllib.parse.quote(images[uri]))
    return uri


def visit_fullsize_html(self, node):
    img = _image_of(node)
    uri = html.escape(_final_uri(self, img["uri"]) if img is not None else "", quote=True)
    self.body.append(f'<div class="priorlib-figure"><a class="priorlib-fullsize reference internal image-reference" '
                     f'href="{uri}" title="Open the full-size PNG">')
    node["_uri"] = uri


def depart_fullsize_html(self, node):
    uri = node.get("_uri", "")
    self.body.append(f'</a><a class="priorlib-fullsize-link" href="{uri}">{FULLSIZE_TEXT}</a></div>')


def _pass(self, node):
    pass


# ----------------------------------------------------------------------------------------- helpers
def _doc_path(env, docname) -> Path:
    return Path(env.doc2path(docname))


def _is_chapter(env, docname) -> bool:
    p = _doc_path(env, docname)
    return p.suffix == ".ipynb" and bool(provenance.CHAPTER_RE.match(p.name))


def _figure_meta(nb: dict) -> dict[str, dict]:
    """sha256 of each PNG output's bytes (myst-nb names the extracted file by it) -> its priorlib metadata."""
    out = {}
    for cell in nb.get("cells", []):
        for o in cell.get("outputs", []) or []:
            data = o.get("data") or {}
            png = data.get("image/png")
            if not png:
                continue
            meta = ((o.get("metadata") or {}).get("image/png") or {}).get("priorlib") or {}
            raw = base64.b64decode("".join(png) if isinstance(png, list) else png)
            out[hashlib.sha256(raw).hexdigest()] = meta
    return out


def _in_cell_output(node) -> bool:
    parent = node.parent
    while parent is not None:
        if isinstance(parent, nodes.container) and "cell_output" in parent.get("classes", []):
            return True
        parent = parent.parent
    return False


def _book_state(app):
    rows = provenance.chapters(Path(app.srcdir) / "book")
    return rows, provenance.odd_ones(rows)


# ---------------------------------------------------------------------------------------- handlers
def env_get_outdated(app, env, added, changed, removed):
    rows, odd = _book_state(app)
    signature = json.dumps([[r["stem"], r["commit"], r["dirty"]] for r in rows])
    if getattr(env, "priorlib_provenance", None) == signature:
        return []
    env.priorlib_provenance = signature
    return [d for d in env.found_docs if _is_chapter(env, d)]


def doctree_read(app, doctree):
    env = app.env
    docname = env.docname
    if not _is_chapter(env, docname):
        return
    stem = _doc_path(env, docname).stem
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is None or not section.children or not isinstance(section[0], nodes.title):
        return
    title = section[0]
    new = provenance.normalise_title(stem, title.astext())
    if new != title.astext():
        title.children = []
        title += nodes.Text(new)
    _, odd = _book_state(app)
    if stem in odd:
        from sphinx import addnodes
        text = provenance.warning_text(stem, odd[stem])
        head, _, tail = text.partition("the build page")
        para = nodes.paragraph()
        para += nodes.Text(head)
        link = addnodes.pending_xref("", refdomain="std", reftype="doc", refexplicit=True,
                                     reftarget="/book/" + provenance.BUILD_PAGE.removesuffix(".md"),
                                     refdoc=docname, refwarn=False)
        link += nodes.inline("", "the build page")
        para += link
        para += nodes.Text(tail)
        warning = nodes.warning("", para, classes=["priorlib-provenance-warning"])
        section.insert(1, warning)


def doctree_resolved(app, doctree, docname):
    env = app.env
    path = _doc_path(env, docname)
    meta = {}
    if path.suffix == ".ipynb":
        try:
            meta = _figure_meta(json.loads(path.read_text()))
        except (OSError, ValueError):
            meta = {}
    unnamed = 0
    for img in list(doctree.findall(nodes.image)):
        if not _in_cell_output(img) or isinstance(img.parent, (fullsize, nodes.reference)):
            continue
        m = meta.get(Path(img["uri"]).stem, {})
        alt = m.get("alt") or m.get("caption")
        if m.get("figure"):
            alt = f"Figure {m['figure']}: {alt}" if alt else f"Figure {m['figure']} of this chapter"
        if not alt and not img.get("alt"):
            unnamed += 1
            alt = (f"Figure output {unnamed} of chapter {path.stem} (executed before figures carried alt text; "
                   f"the text around it describes it)")
        if alt:
            img["alt"] = alt
        wrapper = fullsize()
        img.replace_self(wrapper)
        wrapper += img


def setup(app):
    app.add_node(fullsize, html=(visit_fullsize_html, depart_fullsize_html),
                 latex=(_pass, _pass), text=(_pass, _pass), man=(_pass, _pass), texinfo=(_pass, _pass))
    app.connect("env-get-outdated", env_get_outdated)
    app.connect("doctree-read", doctree_read, priority=400)  # before Sphinx collects the titles
    app.connect("doctree-resolved", doctree_resolved)
    app.add_css_file("priorlib.css")
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
