"""Convert a folder on Ray Data, read the Parquet it wrote, and run it again (nothing new).

What it does: puts the sample scan and a damaged PDF in a folder, starts a local Ray (two
CPUs), converts the folder with ``docvlm.distributed.convert_dataset`` into a folder of
Parquet parts (one actor holds the model; rendering, parsing and writing are Ray tasks),
prints the rows, then runs the same job again: every file is skipped. On a cluster, pass
``address="auto"`` (or ``docvlm convert ... --ray auto``) and a destination URI such as
``s3://bucket/archive.parquet``; see docs/scale.md.
Requirements: pip install -e ".[ray]"
Run: python examples/ray_convert.py [--checkpoint DIR_OR_HUB_ID]
     (without --checkpoint it writes docvlm's tiny random checkpoint and uses it: the text
     it "reads" is noise, but every stage runs for real)
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import pyarrow.parquet as pq

from docvlm import Settings
from docvlm.archive.pipeline import Options
from docvlm.distributed import ScaleOptions, convert_dataset

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="hub id or directory (default: a tiny one)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="docvlm-ray-"))
    checkpoint = args.checkpoint
    if checkpoint is None:
        from docvlm.testing import write_tiny_checkpoint

        checkpoint = str(write_tiny_checkpoint(work / "tiny", resolution=224))
    scans = work / "scans"
    scans.mkdir()
    shutil.copy(HERE / "sample.pdf", scans / "sample.pdf")
    (scans / "damaged.pdf").write_bytes(b"%PDF-1.4\n this file was cut short")

    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        dest = work / "archive.parquet"
        job = dict(
            options=Options(tasks=("text",), dpi=72, max_new_tokens=16),
            scale=ScaleOptions(actors=1, gpus_per_actor=0),
            settings=Settings(dpi=72),
            checkpoint=checkpoint,
        )
        summary = convert_dataset([scans], dest, **job)  # type: ignore[arg-type]
        print(
            f"first run: {summary.files_done} done, {summary.files_failed} failed, "
            f"{summary.pages_done} pages, {summary.pages_per_second:.2f} pages/s"
        )
        table = pq.read_table(dest)  # the folder of parts reads as one table
        for row in table.select(["source", "page", "task", "status", "error"]).to_pylist():
            name = Path(row["source"]).name
            print(
                f"  {name:12} page {row['page']}  {row['task'] or '-':5} {row['status']}"
                + (f"  ({row['error']})" if row["error"] else "")
            )
        again = convert_dataset([scans], dest, **job)  # type: ignore[arg-type]
        print(f"second run: {again.files_skipped} skipped, {again.pages_done} pages read")
    finally:
        ray.shutdown()
    print(f"output in {dest}")


if __name__ == "__main__":
    main()
