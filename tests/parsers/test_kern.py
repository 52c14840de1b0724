from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from lxml import etree

from parsers import KernParseError, kern_to_ekern, normalise_kern, parse_kern
from parsers.kern import MAX_KERN_NOTES, MAX_MEASURE_RECORDS

music21 = pytest.importorskip("music21")


def _scores(corpus: Path) -> list[Path]:
    """The scores no longer than a model output (the fourth, a whole waltz, is longer)."""
    files = sorted((corpus / "music/kern").glob("*.krn"))
    assert len(files) == 4
    return [f for f in files if f.stat().st_size < 10_000]


def _music21_count(kern: str) -> int:
    return len(music21.converter.parseData(kern, format="humdrum").flatten().notes)


def test_every_score_converts_with_music21s_count(corpus: Path) -> None:
    for path in _scores(corpus):
        kern = path.read_text(encoding="utf-8")
        score = parse_kern(kern)
        assert score.note_count == _music21_count(kern) > 0, path.name
        assert score.repairs == ()
        # well-formed MusicXML that reads back to the same notes
        parser = etree.XMLParser(resolve_entities=False, no_network=True)
        assert score.musicxml is not None
        root = etree.fromstring(score.musicxml.encode(), parser)
        assert root.tag == "score-partwise"
        back = music21.converter.parseData(score.musicxml, format="musicxml")
        assert len(back.flatten().notes) == score.note_count
        # the ekern form reads back to the same notes
        ekern = kern_to_ekern(kern)
        assert "·" in ekern and "**ekern" in ekern
        fast = parse_kern(ekern, musicxml=False)
        assert fast.note_count == score.note_count and fast.musicxml is None


def _real_score(corpus: Path, lines: int) -> str:
    """The corpus's real Paderewski waltz cut at the last barline within ``lines`` lines,
    its spines closed: a real score of that length."""
    kern = (corpus / "music/kern/polish_paderewski_valse-melancolique.krn").read_text()
    head = kern.splitlines()[:lines]
    while not head[-1].startswith("="):
        head.pop()
    return "\n".join([*head, "\t".join(["*-"] * len(head[-1].split("\t")))]) + "\n"


def _pitches(kern: str) -> list[str]:
    notes = music21.converter.parseData(kern, format="humdrum").flatten().notes
    return [p.nameWithOctave for n in notes for p in n.pitches]


def test_real_scores_of_600_lines_and_more_are_read(corpus: Path, tmp_path: Path) -> None:
    """Held-out real scores run to 620 lines: they parse, as music21 itself reads them;
    the limit bounds time (see MAX_KERN_NOTES), it does not refuse real music (issue 20)."""
    score_600 = _real_score(corpus, 600)
    assert len(score_600.splitlines()) >= 590
    score = parse_kern(score_600)
    assert score.note_count == _music21_count(score_600) > 400  # over the old limit
    assert _pitches(score.kern) == _pitches(score_600)
    assert score.musicxml is not None
    exported = music21.converter.parseData(score.musicxml, format="musicxml")
    assert len(exported.flatten().notes) == score.note_count
    # `docvlm data kern` takes it as a training record
    from PIL import Image

    from docvlm.finetune.datasets import kern_records

    Image.new("RGB", (64, 32), "white").save(tmp_path / "valse.png")
    (tmp_path / "valse.krn").write_text(score_600)
    skipped: list[str] = []
    (record,) = kern_records(tmp_path, skipped=skipped)
    assert skipped == [] and parse_kern(record["target"], musicxml=False).note_count == (
        score.note_count
    )


def test_text_over_the_note_limit_is_refused_saying_why() -> None:
    bars = "=\n" + "8c 8e 8g\n" * 8
    over = "**kern\n" + bars * (MAX_KERN_NOTES // 24 + 1) + "*-\n"
    with pytest.raises(KernParseError) as info:
        parse_kern(over)
    assert info.value.reason == (
        f"more than {MAX_KERN_NOTES} notes and rests: over the parser's limit, "
        "which bounds its time"
    )


def test_measure_limit() -> None:
    longest = "**kern\n" + "16c\n" * MAX_MEASURE_RECORDS + "*-\n"
    assert parse_kern(longest, musicxml=False).note_count == MAX_MEASURE_RECORDS
    with pytest.raises(KernParseError, match=f"a measure of more than {MAX_MEASURE_RECORDS}"):
        parse_kern("**kern\n" + "16c\n" * (MAX_MEASURE_RECORDS + 1) + "*-\n")
    # barlines start a new measure; chords count each note
    bars = ("=\n" + "4c\n" * 4) * 50
    assert parse_kern("**kern\n" + bars + "*-\n", musicxml=False).note_count == 200
    chords = "**kern\n" + "=\n4c 4e\n" * (MAX_KERN_NOTES // 2) + "*-\n"
    assert parse_kern(chords, musicxml=False).note_count == MAX_KERN_NOTES // 2
    with pytest.raises(KernParseError, match=f"more than {MAX_KERN_NOTES} notes"):
        parse_kern(chords.replace("4c 4e", "4c 4e 4g"))


def test_bekern_flattened_tokens() -> None:
    flat = "**bekern<t>**bekern<b>4·c<t>4·e<b>4·d<t>4·f<b>*-<t>*-<b>"
    score = parse_kern(flat)
    assert score.note_count == 4
    assert score.kern.startswith("**kern\t**kern\n")


def test_truncated_output_is_repaired(corpus: Path) -> None:
    kern = _scores(corpus)[0].read_text(encoding="utf-8")
    cut = kern[: len(kern) // 2]
    score = parse_kern(cut)
    kept = cut[: cut.rindex("\n") + 1]
    last = kept.rstrip("\n").rsplit("\n", 1)[-1]
    assert not last.startswith("*")  # so the open spines are the fields of that record
    open_spines = len(last.split("\t"))
    assert score.repairs == (
        "dropped a partial last record",
        f"closed {open_spines} open spine(s) with *-",
    )
    # the repaired text is the cut text without its partial last line, closed
    assert score.kern == kept + "\t".join(["*-"] * open_spines) + "\n"
    assert score.note_count == _music21_count(score.kern)
    assert 0 < score.note_count < parse_kern(kern).note_count


def test_text_cut_before_the_header_says_so(corpus: Path) -> None:
    kern = _scores(corpus)[0].read_text(encoding="utf-8")
    references = kern[: kern.index("**kern")]
    assert references.startswith("!!!")
    with pytest.raises(KernParseError) as info:
        parse_kern(references)
    assert info.value.reason == "no **kern header in the output"
    assert info.value.raw == references


def test_spine_split_left_open_is_closed() -> None:
    text = "**kern\n*clefG2\n4c\n*^\n4d\t4f\n4e\t4g\n"
    score = parse_kern(text)
    assert score.note_count == 5
    assert score.kern.rstrip().endswith("*-\t*-")


def test_invalid_file_gives_a_clear_error(corpus: Path) -> None:
    text = (corpus / "music/kern_invalid/humdrumR_InvalidFile.krn").read_text(encoding="utf-8")
    with pytest.raises(KernParseError) as info:
        parse_kern(text)
    assert info.value.reason
    assert info.value.raw == text[:10_000]


def test_no_notes_is_an_error() -> None:
    with pytest.raises(KernParseError, match="no notes"):
        parse_kern("**kern\n*clefG2\n4r\n*-\n")
    with pytest.raises(KernParseError, match="no \\*\\*kern header"):
        parse_kern("hello")


def test_write_musicxml_and_mxl(tmp_path: Path, corpus: Path) -> None:
    score = parse_kern(_scores(corpus)[0].read_text(encoding="utf-8"))
    xml = score.write(tmp_path / "a.musicxml")
    mxl = score.write(tmp_path / "a.mxl")
    assert xml.read_text(encoding="utf-8") == score.musicxml
    with zipfile.ZipFile(mxl) as archive:
        assert "META-INF/container.xml" in archive.namelist()
    back = music21.converter.parse(str(mxl))
    assert len(back.flatten().notes) == score.note_count
    assert len(score.to_music21().flatten().notes) == score.note_count
    with pytest.raises(ValueError):
        score.write(tmp_path / "a.pdf")


@pytest.mark.parametrize(
    ("text", "notes", "repairs"),
    [
        ("**kern\n4c\n*-", 1, ()),  # a last line that ends the spines is whole
        ("**kern\n4c\n4d", 1, ("dropped a partial last record", "closed 1 open spine(s) with *-")),
        ("**kern\n4c\n*-\n4d\n", 1, ()),  # nothing is read after the spines end
        ("**kern\n*^\n4c\t4d\n*v\t*v\n4e\n*-\n", 3, ()),  # a split, then a merge
        (
            "**kern\t**kern\n4c\n*\n!x\n4d\t4e\n*-\t*-\n",
            3,
            (
                "record 2 had 1 fields for 2 spines",
                "record 3 had 1 fields for 2 spines",
                "record 4 had 1 fields for 2 spines",
            ),
        ),
        (
            "**kern\t**kern\n*v\t*\n4c\t4d\n*-\t*-\n",
            2,
            ("record 2: removed an unpaired *v",),
        ),
    ],
)
def test_spine_repairs(text: str, notes: int, repairs: tuple[str, ...]) -> None:
    score = parse_kern(text, musicxml=False)
    assert (score.note_count, score.repairs) == (notes, repairs)
    assert score.note_count == _music21_count(score.kern)


def test_record_fillers_and_ekern_form(tmp_path: Path) -> None:
    kern, repairs = normalise_kern("**kern\t**kern\n4c\n*\n!x\n*-\t*-\n")
    assert len(repairs) == 3
    assert kern == "**kern\t**kern\n4c\t.\n*\t*\n!x\t!\n*-\t*-\n"
    assert kern_to_ekern("**kern\n4.c#\t8dd\n=1\t=1\n*-\n") == (
        "**ekern_1.0\n4.·c#\t8·dd\n=1\t=1\n*-\n"
    )
    score = parse_kern("**kern\n4c\n*-\n", musicxml=False)
    with pytest.raises(ValueError, match="musicxml=False"):
        score.write(tmp_path / "a.musicxml")
    full = parse_kern("**kern\n4c\n*-\n")
    assert full.write(tmp_path / "a.xml").read_text(encoding="utf-8") == full.musicxml
