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
    "pubtabnet_tables",
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
    if isinstance(item["html"], str):  # PubTabNet's sample_gt.json layout: the HTML itself
        return _table_body(item["html"])
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


def _table_body(markup: str) -> str:
    """What is inside ``<table>`` of a whole HTML table (as ``pubtabnet_target`` writes it)."""
    start, end = markup.find("<table>"), markup.rfind("</table>")
    if start < 0 or end < start:
        raise ValueError("the html holds no <table>...</table>")
    return markup[start + len("<table>") : end]


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
    if images is not None and not images.is_dir():
        raise InputError("no such folder (--images)", source=str(images.resolve()))
    found: set[str] = set()
    matched = 0
    for where, item in _annotation_items(annotations, skipped):
        found.add(str(item.get("split", "(none)")))
        if split is not None and item.get("split") != split:
            continue
        matched += 1
        try:
            image = folder / item["filename"]
            target = pubtabnet_target(item)  # a broken structure is named before the image
            if not image.is_file():
                _skip(skipped, f"{where}: no such image {image.resolve()}", annotations)
                continue
            if coords:
                target = pubtabnet_target(item, _image_size(image))
        except (KeyError, TypeError, StopIteration, ValueError) as error:
            _skip(skipped, f"{where}: {_reason(error)}", annotations)
            continue
        except OSError as error:
            _skip(skipped, f"{where}: cannot read the image ({error})", annotations)
            continue
        yield {"image": str(image), "target": target}
    if split is not None and not matched:
        splits = ", ".join(sorted(found)) or "none"
        raise InputError(
            f"no record has split {split!r} (splits found: {splits})", source=str(annotations)
        )


def pubtabnet_tables(
    annotations: Path, skipped: list[str] | None = None
) -> tuple[list[str], list[str]]:
    """(HTML of each table, its name ``file:line``) of a PubTabNet/FinTabNet JSON Lines
    file, for drawing: no image is needed."""
    tables, names = [], []
    for where, item in _annotation_items(annotations, skipped):
        try:
            tables.append(pubtabnet_target(item))
        except (KeyError, TypeError, StopIteration, ValueError) as error:
            _skip(skipped, f"{where}: {_reason(error)}", annotations)
            continue
        names.append(where)
    return tables, names


def _annotation_items(
    annotations: Path, skipped: list[str] | None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(``file:line``, annotation) of each JSON object line; other lines are left out."""
    try:
        lines = annotations.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read ({read_cause(error)})", source=str(annotations)) from error
    if not any(line.strip() for line in lines):
        raise InputError("no annotations", source=str(annotations))
    keyed = _keyed_annotations("\n".join(lines))
    if keyed is not None:  # {name: {"html": ...}}, as PubTabNet's sample_gt.json
        yield from ((f"{annotations}:{name}", item) for name, item in keyed)
        return
    for number, line in enumerate(lines, start=1):
        where = f"{annotations}:{number}"
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            _skip(skipped, f"{where}: not JSON ({error})", annotations)
            continue
        if not isinstance(item, dict):
            _skip(skipped, f"{where}: not a JSON object", annotations)
            continue
        yield where, item


def _keyed_annotations(text: str) -> list[tuple[str, dict[str, Any]]] | None:
    """PubTabNet's own example layout (``src/sample_gt.json`` of its repository, read by
    its TEDS): one JSON object of image name -> ``{"html": "<html>...</html>"}`` (or the
    HTML string itself, as in ``sample_pred.json``); None for any other text."""
    if not text.lstrip().startswith("{"):
        return None
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(whole, dict) or "html" in whole or "filename" in whole:
        return None  # one JSON Lines record on one line
    items = []
    for name, value in whole.items():
        markup = value.get("html") if isinstance(value, dict) else value
        items.append((name, {"filename": name, "html": markup}))
    return items


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
        rows = _label_rows(labels)
        if not rows:
            raise InputError("no rows of image name and SMILES", source=str(labels))
        for name, smiles in rows:
            image = folder / name
            target = _canonical(smiles)
            if not image.is_file():
                _skip(skipped, f"{labels}: no such image {image.resolve()}", labels)
            elif target is None:
                _skip(skipped, f"{image}: RDKit rejects the SMILES {smiles!r}", labels)
            else:
                yield {"image": str(image), "target": target}
        return
    for image in _images(folder):
        label = _sibling(image, (".mol", ".sdf", ".smi"))
        if label is None:
            _skip(skipped, f"{image}: no MOL, SDF or .smi file beside it", folder)
            continue
        target = _from_file(label)
        if target is None:
            _skip(skipped, f"{label}: RDKit cannot read the molecule", folder)
            continue
        yield {"image": str(image), "target": target}


def _images(folder: Path) -> list[Path]:
    """The images in ``folder`` (``InputError`` when there is none or no folder)."""
    if not folder.is_dir():
        raise InputError("no such folder", source=str(folder))
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise InputError(f"no images (looked for {', '.join(IMAGE_SUFFIXES)})", source=str(folder))
    return found


def _label_rows(path: Path) -> list[tuple[str, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read ({read_cause(error)})", source=str(path)) from error
    dialect = "excel-tab" if "\t" in text else "excel"
    rows = []
    for row in csv.reader(text.splitlines(), dialect):
        if not row or row[0].startswith("#") or len(row) < 2:
            continue
        if row[0].strip().lower() in ("image", "file", "filename"):
            continue  # a header line
        # USPTO labels.tsv: image, molfile, smiles; otherwise image, smiles
        smiles = row[2] if len(row) > 2 and row[1].lower().endswith(".mol") else row[1]
        rows.append((row[0].strip(), smiles.strip()))
    return rows


def _sibling(image: Path, suffixes: tuple[str, ...]) -> Path | None:
    for candidate in image.parent.iterdir():
        if candidate.stem == image.stem and candidate.suffix.lower() in suffixes:
            return candidate
    return None


def _canonical(smiles: str) -> str | None:
    """RDKit's canonical SMILES (stereo kept), or None when RDKit rejects it."""
    from rdkit import Chem, rdBase

    with rdBase.BlockLogs():  # RDKit logs each rejection; the caller says it once
        mol = Chem.MolFromSmiles(smiles)
    return Chem.MolToSmiles(mol) if mol is not None and mol.GetNumAtoms() else None


def _from_file(path: Path) -> str | None:
    from rdkit import Chem, rdBase

    if path.suffix.lower() == ".smi":
        first = path.read_text(encoding="utf-8").split()
        return _canonical(first[0]) if first else None
    with rdBase.BlockLogs():
        mol = Chem.MolFromMolFile(str(path))  # stereo from the wedges and the 2-D layout
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

    for image in _images(folder):
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


def read_cause(error: Exception) -> str:
    """The cause alone (an ``OSError``'s message repeats the path the error names)."""
    return (error.strerror or str(error)) if isinstance(error, OSError) else str(error)
