"""Exports of a converted ``Document`` into the files archives are made of.

This package owns one reading order per page (``order``) and the writers built on it:
plain text and Markdown, hOCR, ALTO 4.4 and PAGE XML 2019 (and, beside them, the
searchable PDF and DoclingDocument), and the engraving of scores as SVG (``engraving``).
Each writer turns a ``Page`` of records into the format's own units; none of them reads an
image again or runs a model.

It may import ``docvlm.results``, ``docvlm.errors``, ``docvlm.settings``, the reading
path (``docvlm.reading``: sniffing and re-reading an original), ``parsers``, lxml and the
optional libraries of its own formats, loaded when used. It never imports engines, the archive
runner, the client or the CLI: formats sit at the end of the data flow, and
``Document.to_*`` load them lazily so ``import docvlm`` stays light.
"""
