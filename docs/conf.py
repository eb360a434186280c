"""The series as a website: Sphinx + myst-nb + sphinx-book-theme, built by `python -m mtl_utils site`.

Why this stack: it installs from the package index alone and every outside asset can be
pointed at a local copy (the widget manager that renders saved widget views, MathJax), so the
site builds and reads offline. mystmd (Jupyter Book 2) downloads its site template at build
time (mystmd issue #1451); mkdocs-jupyter hard-codes a CDN loader for widgets.

Sources: the repository root (README.md as the home page, notebooks/, the glossary and the
teacher's page); nothing is executed: the notebooks' saved outputs are rendered.
"""
import os

from sphinx.util.osutil import relative_uri

project = "Freeze what?"
author = "the mtl-freeze authors"
html_title = "Freeze what? Fine-tuning a multi-task Transformer"

extensions = ["myst_nb"]
root_doc = "README"
include_patterns = ["README.md", "notebooks/*.ipynb", "notebooks/solutions/*.ipynb", "notebooks/GLOSSARY.md",
                    "notebooks/TEACHING.md"]
exclude_patterns = ["**/.ipynb_checkpoints", "_build", ".venv*", "site"]

nb_execution_mode = "off"           # the saved outputs, as they are
nb_merge_streams = True
myst_heading_anchors = 3

# offline assets, vendored from the npm registry by tools/site.py into $SITE_VENDOR
_vendor = os.environ.get("SITE_VENDOR", os.path.join(os.path.dirname(__file__), "..", "_build", "vendor"))
templates_path = ["_templates"]
html_static_path = ["_static", _vendor]
html_css_files = ["site.css"]
html_favicon = "_static/favicon.svg"          # else the browser asks for /favicon.ico: a 404
nb_ipywidgets_js = {"html-manager/embed.js": {}}   # the standalone bundle: no require.js, no CDN
mathjax_path = "mathjax/tex-chtml.js"

html_theme = "sphinx_book_theme"
html_theme_options = {
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
    "use_download_button": False,            # a visible link instead (_templates/nb-links.html)
    "use_fullscreen_button": False,
    "article_header_end": ["nb-links.html", "article-header-buttons.html"],
}
html_last_updated_fmt = None
html_context = {"default_mode": "light"}     # else a first visit logs "Got invalid theme mode"

_TOC = """

```{toctree}
:hidden:
:caption: Lessons
:glob:

notebooks/0*
```

```{toctree}
:hidden:
:caption: For the class

notebooks/GLOSSARY
notebooks/TEACHING
```

```{toctree}
:hidden:
:caption: Solutions
:glob:

notebooks/solutions/*
```
"""
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


def _add_toc(app, docname, source):
    """The README is the home page: give it the (hidden) table of contents that orders the pages."""
    if docname == app.config.root_doc:
        source[0] += _TOC


def _local_badge(app, doctree, docname):
    """The Colab badge image is remote: show a local copy (the link itself still opens Colab)."""
    if app.builder.format != "html":
        return
    from docutils import nodes
    local = relative_uri(app.builder.get_target_uri(docname), "_static/colab-badge.svg")
    for img in doctree.findall(nodes.image):
        if img.get("uri") == COLAB_BADGE:
            img["uri"] = local


def setup(app):
    app.connect("source-read", _add_toc)
    app.connect("doctree-resolved", _local_badge)
