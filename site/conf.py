# Sphinx configuration of the course's website (`make site`; course_kit/site.py prepares the sources).
# Sphinx + myst-nb + sphinx-book-theme: Python only, so the site builds offline from PyPI packages alone
# (CONTRIBUTING "The website" says why this builder). Notebooks are rendered from their stored outputs.
import os

project = "Bias, fairness and alignment of generative models"
author = "the course's authors"
extensions = ["myst_nb"]
nb_execution_mode = "off"  # never re-execute: the pages show the outputs stored (and checked by nbval) in labs/
nb_output_stderr = "remove"
myst_enable_extensions = ["dollarmath", "amsmath", "html_image"]
html_theme = "sphinx_book_theme"
html_title = project
html_static_path = ["_static"]
# MathJax 3 (SVG output: no font files) from the django-static-mathjax package (plain MathJax files, no
# dependencies), copied into _static/mathjax: no CDN, the site renders formulas offline.
mathjax_path = "mathjax/es5/tex-svg.js"
html_theme_options = {
    "repository_url": os.environ.get("COURSE_KIT_REPOSITORY", ""),
    "use_repository_button": bool(os.environ.get("COURSE_KIT_REPOSITORY")),
    "show_toc_level": 2,
}
exclude_patterns = ["_build"]
suppress_warnings = ["mystnb.unknown_mime_type", "myst.header"]
html_show_sourcelink = False
html_last_updated_fmt = None
html_favicon = "_static/favicon.svg"
html_context = {"default_mode": "light"}
