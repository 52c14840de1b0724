"""Archive conversion: many sources through the overlapped stages into a destination,
resumable and exactly once.

    output (Output: the destination parsed once; its manifest, lock, log and sink)
    runner (Run, run_job) -> pipeline (render lanes, generation thread, writer)
    manifest (SQLite: what is done), records (content hash, job key, Document)
    sinks / parquet / disk (JSON Lines, Parquet, folders; durable writes), progress
    edits (a correction and what it does to a record), corrections (the log in the
    destination, page versions, records read back corrected), examples (training data)
    readback (an output read back as Documents), review (its weakest results first)

May import: docvlm.reading, docvlm.engines (the model pool), docvlm.formats (the files
of an output folder), docvlm.document, docvlm.results, docvlm.settings, docvlm.errors,
docvlm.tasks, parsers. Never imports the client, the CLI,
the server or docvlm.distributed: those are given a model pool and drive the runner.
"""
