"""Exports of a converted ``Document`` into the files archives are made of."""
