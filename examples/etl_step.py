"""An ETL step: convert a folder of scans into Parquet, resumably, and read the rows back.

What it does: ``convert_step`` is the plain Python task an Airflow ``@task`` or a Dagster
``@op`` would call: it converts every document under a folder into one Parquet file (one
row per result), skips what an earlier run finished, and returns the run's summary (a
dict, fit for XCom or op metadata). The demo writes docvlm's tiny random checkpoint (the
model writes noise, so the text is nonsense; the pipeline is real), converts the sample
scan and a broken file, runs the step a second time to show that nothing is read again,
and prints rows read back with pandas.
Requirements: pip install -e ".[parquet]" (pyarrow, pandas).
Run: python examples/etl_step.py
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from docvlm import DocVLM, Settings
from docvlm.archive.pipeline import Options
from docvlm.archive.runner import run_job

HERE = Path(__file__).parent


def convert_step(inputs: str, output: str, checkpoint: str) -> dict[str, Any]:
    """Convert ``inputs`` (a folder, archive or file) into ``output``; rerunning resumes.

    Raises only for configuration errors (e.g. no checkpoint); bad files are rows with
    ``status == "failure"`` and their cause in ``error``. Fail the task on the exit code
    if you want a failed file to stop the pipeline.
    """
    settings = Settings(dpi=100, max_page_pixels=4_000_000)
    with DocVLM(settings, checkpoint=checkpoint) as client:
        summary = run_job(
            client,
            [inputs],
            Options(tasks=("text",), dpi=settings.dpi, max_new_tokens=8),
            output,
            max_error_rate=0.5,
        )
    return summary.model_dump()


def main() -> None:
    import pandas

    from docvlm.testing import write_tiny_checkpoint

    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        checkpoint = write_tiny_checkpoint(work / "tiny")
        inputs = work / "scans"
        inputs.mkdir()
        shutil.copy(HERE / "sample.pdf", inputs / "sample.pdf")
        (inputs / "broken.pdf").write_bytes(b"%PDF-1.7\nnot a whole PDF")
        output = str(work / "out.parquet")

        first = convert_step(str(inputs), output, str(checkpoint))
        print(
            f"first run: {first['files_done']} done, {first['files_failed']} failed, "
            f"{first['pages_done']} pages, exit code {first['exit_code']}"
        )
        again = convert_step(str(inputs), output, str(checkpoint))
        print(f"second run: {again['files_skipped']} skipped, {again['pages_done']} pages read")

        rows = pandas.read_parquet(output)
        print(rows[["source", "page", "task", "status", "error"]].to_string(index=False))


if __name__ == "__main__":
    main()
