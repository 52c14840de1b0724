"""Synthetic training images, each paired with its exact target, from a seed.

This is how OCSR and OMR models are trained: draw what you know the answer to.

- ``draw_molecule``: RDKit's drawing (``MolDraw2DCairo``) with a varied bond width, font
  and size, rotation, explicit methyls, black-and-white or colour atoms, then scan noise;
  the target is RDKit's canonical SMILES of the molecule drawn.
- ``engrave_kern``: verovio engraves a kern excerpt on one system (one of its SMuFL
  fonts, varied scale and spacing), resvg rasterises the SVG (both from PyPI, no browser
  and no network); the target is the excerpt as normalised ``**kern``.
- ``render_table`` (in ``docvlm.finetune.tables``): a table drawn from its HTML grid.

``synthesize(kind, sources, out, count, seed)`` writes the images and a ``train.jsonl``;
the same seed gives the same images and records.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from docvlm.errors import InputError, MissingDependencyError
from docvlm.finetune.datasets import read_cause as _why
from docvlm.finetune.noise import add_scan_noise
from docvlm.formats.engraving import verovio_toolkit

__all__ = ["SyntheticKind", "add_scan_noise", "draw_molecule", "engrave_kern", "synthesize"]

SyntheticKind = Literal["molecules", "music", "tables"]
_FONTS = ("Leipzig", "Bravura", "Gootville", "Leland", "Petaluma")
_TTF_DIRS = (Path("/usr/share/fonts/truetype"), Path("/usr/share/fonts"))


def _font_files() -> list[Path]:
    found: list[Path] = []
    for folder in _TTF_DIRS:
        if folder.is_dir():
            found += sorted(p for p in folder.rglob("*.ttf") if "Mono" not in p.name)
    return found[:40]


def draw_molecule(
    smiles: str, rng: random.Random, size: int = 384, noise: float = 1.0
) -> tuple[Image.Image, str]:
    """A drawing of the molecule and its canonical SMILES (``InputError`` if RDKit rejects it)."""
    try:
        from rdkit import Chem, rdBase
    except ImportError as error:
        raise MissingDependencyError(
            "molecule drawing needs RDKit: pip install 'docvlm[chem]'"
        ) from error
    with rdBase.BlockLogs():  # RDKit logs each rejection; the InputError says it once
        return _draw(Chem.MolFromSmiles(smiles), smiles, rng, size, noise)


def _draw(
    mol: Any, smiles: str, rng: random.Random, size: int, noise: float
) -> tuple[Image.Image, str]:
    from rdkit import Chem
    from rdkit.Chem.Draw import rdMolDraw2D

    if mol is None:
        shown = smiles if len(smiles) <= 60 else smiles[:60] + "..."
        raise InputError(f"RDKit rejects the SMILES {shown!r}", source=smiles)
    target = Chem.MolToSmiles(mol)
    drawer = rdMolDraw2D.MolDraw2DCairo(size, size)
    options: Any = drawer.drawOptions()  # RDKit's stubs type its fields as the class
    options.bondLineWidth = rng.uniform(1.0, 3.5)
    options.rotate = rng.uniform(0.0, 360.0)
    options.padding = rng.uniform(0.03, 0.15)
    options.explicitMethyl = rng.random() < 0.3
    options.multipleBondOffset = rng.uniform(0.12, 0.2)
    options.minFontSize = rng.randint(8, 14)
    options.maxFontSize = options.minFontSize + rng.randint(4, 16)
    options.comicMode = rng.random() < 0.1
    if rng.random() < 0.7:
        options.useBWAtomPalette()
    fonts = _font_files()
    if fonts and rng.random() < 0.7:
        options.fontFile = str(rng.choice(fonts))
    drawer.DrawMolecule(mol)
    drawer.FinishDrawing()
    image = Image.open(io.BytesIO(drawer.GetDrawingText())).convert("RGB")
    return add_scan_noise(image, rng, noise), target


def engrave_kern(kern: str, rng: random.Random, noise: float = 1.0) -> Image.Image:
    """The kern engraved by verovio on one system and rasterised by resvg."""
    try:
        import resvg_py
    except ImportError as error:
        raise MissingDependencyError(
            "music engraving needs verovio and resvg-py: pip install 'docvlm[synthetic]'"
        ) from error
    toolkit = verovio_toolkit("synthetic")
    toolkit.setOptions(
        {
            "inputFrom": "humdrum",
            "breaks": "none",
            "adjustPageWidth": True,
            "adjustPageHeight": True,
            "header": "none",
            "footer": "none",
            "font": rng.choice(_FONTS),
            "scale": rng.randint(30, 50),
            "spacingStaff": rng.randint(8, 16),
            "spacingNonLinear": rng.uniform(0.5, 0.7),
            "pageMarginLeft": rng.randint(20, 80),
            "pageMarginTop": rng.randint(20, 80),
        }
    )
    if not toolkit.loadData(kern) or toolkit.getPageCount() < 1:
        raise InputError("verovio cannot engrave this kern", source="kern")
    png = resvg_py.svg_to_bytes(svg_string=toolkit.renderToSVG(1), background="white")
    image = Image.open(io.BytesIO(bytes(png))).convert("RGB")
    return add_scan_noise(image, rng, noise)


def synthesize(
    kind: SyntheticKind,
    sources: Sequence[str],
    out: Path,
    count: int,
    seed: int = 0,
    noise: float = 1.0,
    coords: bool = False,
    names: Sequence[str] | None = None,
) -> tuple[int, list[str]]:
    """Write ``count`` images (cycling ``sources``: SMILES, kern texts or table HTML) under
    ``out/images`` and their records to ``out/train.jsonl``. Returns (written, skipped).
    ``coords`` (tables): each cell's box as location tokens in the target. A source that
    cannot be drawn is left out once, named by ``names`` (default: its number from 1)."""
    from docvlm.finetune.data import write_records

    if not sources:
        raise InputError(f"no {kind} sources to draw", source="synthesize")
    make = _MAKERS[kind]
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    records, skipped = [], []
    failed: set[int] = set()
    for index in range(count):
        rng = random.Random(f"{seed}:{index}")
        which = index % len(sources)
        if which in failed:
            continue
        try:
            image, target = make(sources[which], rng, noise, coords)
        except InputError as error:
            failed.add(which)
            name = names[which] if names is not None else f"source {which + 1}"
            skipped.append(f"{name}: {error.reason}")
            continue
        path = images / f"{kind}-{index:06d}.png"
        image.save(path)
        records.append({"image": str(path), "target": target})
    if not records:  # leave any train.jsonl of an earlier run as it is
        return 0, skipped
    written = write_records(records, out / "train.jsonl")
    return written, skipped


Maker = Callable[[str, random.Random, float, bool], tuple[Image.Image, str]]


def _molecule(source: str, rng: random.Random, noise: float, _: bool) -> tuple[Image.Image, str]:
    return draw_molecule(source, rng, noise=noise)


def _music(source: str, rng: random.Random, noise: float, _: bool) -> tuple[Image.Image, str]:
    from docvlm.finetune.datasets import kern_target

    return engrave_kern(source, rng, noise), kern_target(source)


def _table(source: str, rng: random.Random, noise: float, coords: bool) -> tuple[Image.Image, str]:
    from docvlm.finetune.tables import render_table

    return render_table(source, rng, noise, coords)


_MAKERS: dict[SyntheticKind, Maker] = {
    "molecules": _molecule,
    "music": _music,
    "tables": _table,
}


def read_smiles(path: Path) -> list[str]:
    """The first column of a ``.smi`` file (blank and ``#`` lines skipped); ``InputError``
    when it cannot be read or holds no SMILES."""
    try:
        rows = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read ({_why(error)})", source=str(path)) from error
    smiles = [row.split()[0] for row in rows if row.strip() and not row.startswith("#")]
    if not smiles:
        raise InputError("no SMILES in it", source=str(path))
    return smiles


#: Interpretations carried into each excerpt, in the order they are written.
_CARRIED = ("*part", "*staff", "*I", "*clef", "*k[", "*M", "*met")


def _category(token: str) -> str | None:
    if token.endswith(":") and len(token) <= 5 and token[1:2].isalpha():
        return "key"  # *D: or *a-: (the key, after the key signature)
    return next((c for c in _CARRIED if token.startswith(c)), None)


def kern_file_excerpts(path: Path, measures: int = 4) -> list[str]:
    """``kern_excerpts`` of a file; ``InputError`` naming it and the cause when it cannot
    be read or no excerpt can be cut (music21's parse error of the first one tried)."""
    from docvlm.finetune.datasets import kern_target
    from parsers import KernParseError

    try:
        kern = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read ({_why(error)})", source=str(path)) from error
    if not any(line.startswith("**") for line in kern.splitlines()):
        raise InputError("not kern: no **kern header line", source=str(path))
    try:
        kern_target(kern)
    except KernParseError as error:
        raise InputError(f"not kern ({error.reason})", source=str(path)) from error
    errors: list[str] = []
    excerpts = kern_excerpts(kern, measures, errors)
    if not excerpts:
        cause = errors[0] if errors else "no bars with notes"
        raise InputError(f"no excerpt could be cut ({cause})", source=str(path))
    return excerpts


def kern_excerpts(kern: str, measures: int = 4, errors: list[str] | None = None) -> list[str]:
    """Excerpts of ``measures`` bars each, every one a complete kern score with the clefs,
    key and meter in force at its start. Cuts fall only on barlines where no spine is
    split; excerpts music21 cannot read are left out (their errors added to ``errors``)."""
    from docvlm.finetune.datasets import kern_target
    from parsers import KernParseError, parse_kern

    lines = kern_target(kern).splitlines()
    if not lines or not lines[0].startswith("**"):
        return []
    header, body = lines[0], [ln for ln in lines[1:] if set(ln.split("\t")) != {"*-"}]
    spines = len(header.split("\t"))
    state: list[dict[str, str]] = [{} for _ in range(spines)]
    excerpts: list[str] = []
    current: list[str] = []
    opening: list[str] = []
    bars = 0
    for line in body:
        fields = line.split("\t")
        if len(fields) == spines and fields[0].startswith("*"):
            for index, token in enumerate(fields):
                category = _category(token)
                if category:
                    state[index][category] = token
        current.append(line)
        if fields[0].startswith("="):
            bars += 1
            if bars >= measures and len(fields) == spines:
                excerpts.append(_score(header, opening, current, spines))
                opening = _interpretations(state, spines)
                current, bars = [], 0
    if any(not ln.startswith(("*", "=")) for ln in current):
        excerpts.append(_score(header, opening, current, spines))
    valid = []
    for excerpt in excerpts:
        try:
            parse_kern(excerpt, musicxml=False)
        except KernParseError as error:
            if errors is not None:
                errors.append(str(error))
            continue
        valid.append(excerpt)
    return valid


def _interpretations(state: list[dict[str, str]], spines: int) -> list[str]:
    lines = []
    for category in (*_CARRIED, "key"):
        tokens = [state[i].get(category, "*") for i in range(spines)]
        if any(t != "*" for t in tokens):
            lines.append("\t".join(tokens))
    return lines


def _score(header: str, opening: list[str], body: list[str], spines: int) -> str:
    return "\n".join([header, *opening, *body, "\t".join(["*-"] * spines)]) + "\n"
