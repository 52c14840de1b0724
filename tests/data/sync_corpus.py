"""Copy the public fixtures the suite needs from ../shared/corpus into tests/data/corpus.

A plain clone has no ../shared; the tests then read this subset, laid out as the full
corpus is (same relative paths), so the whole suite runs anywhere. The files are copied
byte for byte and their rows of provenance.tsv with them (source, commit, licence). Run
from the repository root after adding a test that needs another corpus file:

    python tests/data/sync_corpus.py
"""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "corpus"
HERE = Path(__file__).resolve().parent / "corpus"

#: Folders copied whole, then single files (relative to the corpus root).
FOLDERS = (
    "tables/pubtabnet",
    "molecules",
    "music",
    "pdfs/encrypted",
    "pdfs/corrupt",
    "pdfs/corrupt_images",
    "pdfs/not_pdf",
)
FILES = (
    "pdfs/images/pillow_12in16bit.tif",
    "pdfs/images/pillow_16bit.cropped.tif",
    "pdfs/images/pillow_g4-multi.tiff",
    "pdfs/images/pillow_hopper_16bit.pgm",
    "pdfs/images/pillow_hopper_g4_500.tif",
    "pdfs/images/pillow_hopper_orientation_6.jpg",
    "pdfs/images/pillow_multipage.tiff",
    "pdfs/images/pillow_pil_sample_cmyk.jpg",
    "pdfs/images/pillow_tiff_16bit_RGB.tiff",
    "pdfs/rotated/ocrmypdf_cardinal.pdf",
    "pdfs/good_scans/ocrmypdf_linn.png",
    "pdfs/good_scans/ocrmypdf_linn.txt",
    "pdfs/good_scans/ocrmypdf_typewriter.png",
    "pdfs/good_scans/pikepdf_congress.pdf",
    "MANIFEST.md",
)


def main() -> None:
    if not SHARED.is_dir():
        raise SystemExit(f"{SHARED} is absent: nothing to copy from")
    if HERE.exists():
        shutil.rmtree(HERE)
    copied: list[str] = []
    for folder in FOLDERS:
        for path in sorted((SHARED / folder).rglob("*")):
            if path.is_file():
                copied.append(path.relative_to(SHARED).as_posix())
    copied.extend(FILES)
    for relative in copied:
        target = HERE / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHARED / relative, target)
    rows = (SHARED / "provenance.tsv").read_text(encoding="utf-8").splitlines()
    kept = [rows[0], *(row for row in rows[1:] if row.split("\t", 1)[0] in set(copied))]
    (HERE / "provenance.tsv").write_text("\n".join(kept) + "\n", encoding="utf-8")
    total = sum((HERE / r).stat().st_size for r in copied)
    print(f"copied {len(copied)} files, {total / 1e6:.1f} MB, into {HERE}")


if __name__ == "__main__":
    main()
