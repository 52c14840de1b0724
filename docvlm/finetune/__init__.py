"""Fine-tuning PaliGemma 2 for a task: data, the paper's recipes, training, evaluation.

No public checkpoint reads tables, molecules or music, so making one is part of docvlm::

    datasets   the field's formats -> {image, target} JSON Lines (targets as parsers read)
    synthetic  images made from SMILES, kern or HTML, each with its exact target
    recipes    per-task defaults from the paper (resolution, output length, rates)
    train      finetune(options): LoRA / QLoRA / full, exact --max-steps, accumulation,
               resumable checkpoints, held-out scoring, merged or adapter output
    tiny       a small checkpoint that learns on a CPU, to try all of it offline

Importing this package is light; torch, transformers, peft and RDKit load when used.
May import: engines (checkpoints, loading), the reading path, formats (engraving),
parsers and eval; never the client, the archive machinery, the server or the CLI.
"""

from docvlm.finetune.data import read_examples, write_records
from docvlm.finetune.datasets import (
    kern_records,
    kern_target,
    molecule_records,
    pubtabnet_records,
    pubtabnet_target,
)
from docvlm.finetune.options import FinetuneOptions, FinetuneReport, Plan
from docvlm.finetune.recipes import RECIPES, TRAINABLE_TASKS, Recipe
from docvlm.finetune.train import Progress, finetune

__all__ = [
    "RECIPES",
    "TRAINABLE_TASKS",
    "FinetuneOptions",
    "FinetuneReport",
    "Plan",
    "Progress",
    "Recipe",
    "finetune",
    "kern_records",
    "kern_target",
    "molecule_records",
    "pubtabnet_records",
    "pubtabnet_target",
    "read_examples",
    "write_records",
]
