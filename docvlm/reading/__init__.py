"""The reading path: a source becomes pages, regions, crops and requests, and generations
become results assembled into pages.

    sources -> render (pdf, render_worker) -> regions -> reads -> assemble / stitch
    pages: the whole path for a batch of pages, given a task's engine as a function
    requests: the port to a model (Request, Generation, the Engine protocol)
    options: the reading options every surface shares; inspection: types and page counts

May import: docvlm.results, docvlm.settings, docvlm.errors, docvlm.tasks, parsers.
Never imports docvlm.engines (a model is reached only through ``requests.Engine``), the
archive machinery, the client or the CLI.
"""
