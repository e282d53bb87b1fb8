"""The conversion report as one self-contained HTML page (and its JSON).

Marketing ops read it once a month, often offline or as an e-mail
attachment, so the page carries everything inline: CSS and SVG charts, no
scripts, fonts, images or network requests (a Content-Security-Policy makes
the browser refuse any that slip in). Every value from the data is escaped.

:mod:`.style` holds the CSS and the number formats, :mod:`.charts` the SVG
charts, :mod:`.tables` the tables and :mod:`.page` the page around them.
"""

from stream_scorer.review.report.page import render_html, write_report

__all__ = ["render_html", "write_report"]
