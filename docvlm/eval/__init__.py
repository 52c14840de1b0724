"""Evaluation metrics as the field computes them (torch-free).

Tables: ``teds``, ``s_teds`` (PubTabNet's official definition), ``grits_top``,
``grits_con``, ``grits``. Molecules: ``smiles_exact_match``, ``inchikey_match``,
``tanimoto``. Music: ``cer``, ``ser``, ``ler`` (Sheet Music Transformer). OCR:
``word_f1`` (HierText protocol), ``text_cer``, ``text_wer``. ``evaluate`` scores JSONL
files and backs ``docvlm eval``.

May import: docvlm.errors and parsers only (no model, no reading path).
"""

from docvlm.eval.molecules import inchikey_match, smiles_exact_match, tanimoto
from docvlm.eval.music import cer, ler, music_error_rates, ser
from docvlm.eval.ocr import OcrScore, Word, text_cer, text_wer, word_f1
from docvlm.eval.runner import PAPER, EvalReport, evaluate
from docvlm.eval.tables import GritsScore, grits, grits_con, grits_top, s_teds, teds

__all__ = [
    "PAPER",
    "EvalReport",
    "GritsScore",
    "OcrScore",
    "Word",
    "cer",
    "evaluate",
    "grits",
    "grits_con",
    "grits_top",
    "inchikey_match",
    "ler",
    "music_error_rates",
    "s_teds",
    "ser",
    "smiles_exact_match",
    "tanimoto",
    "teds",
    "text_cer",
    "text_wer",
    "word_f1",
]
