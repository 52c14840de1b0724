"""Exports of a converted ``Document`` into the files archives are made of.

May import: docvlm.results, docvlm.errors, parsers, and each format's own library (lazily).
Never imports docvlm.engines, the archive runner, the client or the CLI.
"""
