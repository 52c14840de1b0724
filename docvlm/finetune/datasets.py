"""Training records from the field's own formats, each target in the form its parser reads.

- ``pubtabnet_records``: PubTabNet / FinTabNet JSON Lines (structure tokens, cell tokens,
  cell boxes) to HTML with each cell's text and, optionally, its box as ``coords``
  location tokens (the paper's table format);
- ``molecule_records``: images with MOL files or a SMILES table (USPTO, CLEF, DECIMER
  style) to RDKit's canonical SMILES;
- ``kern_records``: images with ``**kern``/``**ekern``/``**bekern`` files (GrandStaff,
  Polish scores style) to normalised ``**kern``.

Each yields ``{"image": path, "target": text}`` records for ``write_records``; an example
that cannot be converted is left out and its reason recorded in ``skipped``.
"""

from __future__ import annotations

import csv
import html
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from docvlm.errors import InputError
from parsers import Box, box_to_tokens, normalise_kern

__all__ = [
    "IMAGE_SUFFIXES",
    "kern_records",
    "kern_target",
    "molecule_records",
    "pubtabnet_records",
    "pubtabnet_target",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp")
#: Inline markup PubTabNet keeps inside cells; every other token is text (escaped).
_INLINE = {"<b>", "</b>", "<i>", "</i>", "<sup>", "</sup>", "<sub>", "</sub>", "<br>", "<br/>"}
_KERN_SUFFIXES = (".krn", ".kern", ".ekern", ".bekern")


def pubtabnet_target(item: dict[str, Any], size: tuple[int, int] | None = None) -> str:
    """The HTML of one PubTabNet/FinTabNet annotation: structure tokens with each cell's
    tokens written in. With ``size`` (the image's width, height) every cell that has a
    box gets ``coords="<loc y0><loc x0><loc y1><loc x1>"`` in bins of the white square
    the model sees (the image padded right and bottom to its longer side)."""
    cells = iter(item["html"]["cells"])
    side = max(size) if size else 0
    parts: list[str] = []
    for token in item["html"]["structure"]["tokens"]:
        if token not in ("<td>", ">"):
            parts.append(token)
            continue
        cell = next(cells)
        coords = ""
        if side and cell.get("bbox"):
            x0, y0, x1, y1 = cell["bbox"]
            box = box_to_tokens(Box(x0=x0, y0=y0, x1=x1, y1=y1), side, side)
            coords = f' coords="{box}"'
        parts.append(f"<td{coords}>" if token == "<td>" else f"{coords}>")
        parts.append(
            "".join(t if t in _INLINE else html.escape(t, quote=False) for t in cell["tokens"])
        )
    return "".join(parts)


def pubtabnet_records(
    annotations: Path,
    *,
    images: Path | None = None,
    split: str | None = None,
    coords: bool = False,
    skipped: list[str] | None = None,
) -> Iterator[dict[str, str]]:
    """Records of a PubTabNet/FinTabNet JSON Lines file (``split``: only that split).

    Images are looked up in ``images`` (default: the annotations' folder) by ``filename``.
    """
    folder = images or annotations.parent
    try:
        lines = annotations.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise InputError(f"cannot read ({error.strerror})", source=str(annotations)) from error
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            if split is not None and item.get("split") != split:
                continue
            image = folder / item["filename"]
            size = _image_size(image) if coords else None
            target = pubtabnet_target(item, size)
        except (json.JSONDecodeError, KeyError, TypeError, StopIteration, ValueError) as error:
            _skip(skipped, f"{annotations}:{number}: {_reason(error)}", annotations)
            continue
        except OSError as error:
            _skip(skipped, f"{annotations}:{number}: cannot read the image ({error})", annotations)
            continue
        yield {"image": str(image), "target": target}


def _image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def _reason(error: Exception) -> str:
    if isinstance(error, StopIteration):
        return "fewer cells than the structure has"
    if isinstance(error, KeyError):
        return f"no {error} field"
    return str(error) or type(error).__name__


def _skip(skipped: list[str] | None, reason: str, source: Path) -> None:
    if skipped is None:
        raise InputError(reason, source=str(source))
    skipped.append(reason)


def molecule_records(
    folder: Path, *, labels: Path | None = None, skipped: list[str] | None = None
) -> Iterator[dict[str, str]]:
    """Records of structure images with their molecules, target RDKit's canonical SMILES.

    With ``labels`` (TSV or CSV: image name, SMILES; ``#`` lines skipped) the SMILES come
    from there; otherwise each image is paired with the MOL/SDF or ``.smi`` file of the
    same name in ``folder``.
    """
    if labels is not None:
        for name, smiles in _label_rows(labels):
            image = folder / name
            target = _canonical(smiles)
            if not image.is_file():
                _skip(skipped, f"{image}: no such image", labels)
            elif target is None:
                _skip(skipped, f"{image}: RDKit rejects the SMILES {smiles!r}", labels)
            else:
                yield {"image": str(image), "target": target}
        return
    for image in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        label = _sibling(image, (".mol", ".sdf", ".smi"))
        if label is None:
            _skip(skipped, f"{image}: no MOL, SDF or .smi file beside it", folder)
            continue
        target = _from_file(label)
        if target is None:
            _skip(skipped, f"{label}: RDKit cannot read the molecule", folder)
            continue
        yield {"image": str(image), "target": target}


def _label_rows(path: Path) -> Iterator[tuple[str, str]]:
    text = path.read_text(encoding="utf-8")
    dialect = "excel-tab" if "\t" in text else "excel"
    for row in csv.reader(text.splitlines(), dialect):
        if not row or row[0].startswith("#") or len(row) < 2:
            continue
        if row[0].strip().lower() in ("image", "file", "filename"):
            continue  # a header line
        # USPTO labels.tsv: image, molfile, smiles; otherwise image, smiles
        yield (
            row[0].strip(),
            (row[2] if len(row) > 2 and row[1].lower().endswith(".mol") else row[1]).strip(),
        )


def _sibling(image: Path, suffixes: tuple[str, ...]) -> Path | None:
    for candidate in image.parent.iterdir():
        if candidate.stem == image.stem and candidate.suffix.lower() in suffixes:
            return candidate
    return None


def _canonical(smiles: str) -> str | None:
    """RDKit's canonical SMILES (stereo kept), or None when RDKit rejects it."""
    from rdkit import Chem, rdBase

    rdBase.DisableLog("rdApp.*")
    try:
        mol = Chem.MolFromSmiles(smiles)
        return Chem.MolToSmiles(mol) if mol is not None and mol.GetNumAtoms() else None
    finally:
        rdBase.EnableLog("rdApp.*")


def _from_file(path: Path) -> str | None:
    from rdkit import Chem, rdBase

    if path.suffix.lower() == ".smi":
        first = path.read_text(encoding="utf-8").split()
        return _canonical(first[0]) if first else None
    rdBase.DisableLog("rdApp.*")
    try:
        mol = Chem.MolFromMolFile(str(path))  # stereo from the wedges and the 2-D layout
    finally:
        rdBase.EnableLog("rdApp.*")
    return Chem.MolToSmiles(mol) if mol is not None and mol.GetNumAtoms() else None


def kern_target(text: str) -> str:
    """Normalised ``**kern`` for training: ekern/bekern separators removed, and the lines
    nothing in the image shows (reference records, comments) dropped."""
    kern, _ = normalise_kern(text)
    keep = [
        line
        for line in kern.splitlines()
        if line and not all(field.startswith("!") for field in line.split("\t"))
    ]
    return "\n".join(keep) + "\n"


def kern_records(folder: Path, *, skipped: list[str] | None = None) -> Iterator[dict[str, str]]:
    """Records of score images each with the kern file of the same name in ``folder``."""
    from parsers import KernParseError, parse_kern

    for image in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        label = _sibling(image, _KERN_SUFFIXES)
        if label is None:
            _skip(skipped, f"{image}: no kern file beside it", folder)
            continue
        try:
            target = kern_target(label.read_text(encoding="utf-8"))
            parse_kern(target, musicxml=False)
        except (KernParseError, UnicodeDecodeError) as error:
            _skip(skipped, f"{label}: {error}", folder)
            continue
        yield {"image": str(image), "target": target}
