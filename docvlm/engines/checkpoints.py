"""Finding a checkpoint: a local directory, or a hub id resolved to a local snapshot.

Resolution happens before transformers is called so that a missing directory, an offline
hub id or a gated model gives one clear line (transformers alone retries for minutes and
then names the wrong file). Only safetensors weights are fetched or accepted, and only
from inside the checkpoint's folder: ``weight_files`` reads the shard index and refuses a
shard that is not a ``.safetensors`` file or lies outside (``..``, an absolute path, a link
leading out); ``check_weights`` reads each file's header, so a damaged file is one line
naming it, not a traceback from the loader.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

from docvlm.errors import CheckpointUnavailableError, MissingDependencyError

__all__ = ["check_weights", "is_hub_id", "resolve_checkpoint", "weight_files"]

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}")
_PATTERNS = ["*.json", "*.safetensors", "tokenizer*", "*.model"]


def is_hub_id(reference: str) -> bool:
    """True for ``owner/name`` that is not an existing local path."""
    return bool(_HUB_ID.fullmatch(reference)) and not Path(reference).exists()


def _check_directory(path: Path, reference: str, kind: str = "checkpoint") -> Path:
    if kind == "adapter":
        if not (path / "adapter_config.json").is_file():
            raise CheckpointUnavailableError(f"adapter {reference!r}: no adapter_config.json")
        config = path / "adapter_config.json"
        try:
            json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise CheckpointUnavailableError(
                f"{config}: not a JSON adapter configuration ({_first_line(error)})"
            ) from None
        if not (path / "adapter_model.safetensors").is_file():
            # peft would fall back to adapter_model.bin, a pickle handed to torch.load
            found = ", ".join(sorted(p.name for p in path.glob("adapter_model.*"))) or "none"
            raise CheckpointUnavailableError(
                f"adapter {reference!r}: no adapter_model.safetensors in {path} (found: "
                f"{found}; docvlm loads safetensors only)"
            )
        return path
    if not (path / "config.json").is_file():
        raise CheckpointUnavailableError(f"checkpoint {reference!r}: no config.json in {path}")
    if not any(path.glob("*.safetensors")):
        raise CheckpointUnavailableError(
            f"checkpoint {reference!r}: no .safetensors weights in {path} "
            "(docvlm loads safetensors only)"
        )
    return path


#: How long the hub may take to answer a connection before docvlm gives up on it: a
#: machine without network then fails in about this time, not after minutes of retries.
HUB_PROBE_SECONDS = 1.5


class _HubProbe:
    """A TCP connection to the hub (``HF_ENDPOINT``) tried in a daemon thread.

    Name resolution has no timeout of its own, hence the thread; it starts before the
    cache is searched so that the two waits overlap."""

    def __init__(self, timeout: float = HUB_PROBE_SECONDS) -> None:
        endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
        self._address = (
            endpoint.hostname or "huggingface.co",
            endpoint.port or (80 if endpoint.scheme == "http" else 443),
        )
        self._timeout = timeout
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._probe, daemon=True)
        self._thread.start()

    def _probe(self) -> None:
        try:
            socket.create_connection(self._address, timeout=self._timeout).close()
            self._opened.set()
        except OSError:
            pass

    def reachable(self) -> bool:
        self._thread.join(self._timeout)
        return self._opened.is_set()


def resolve_checkpoint(
    reference: str, *, cache_dir: Path | None, offline: bool, kind: str = "checkpoint"
) -> Path:
    """The local directory holding ``reference`` (downloading it when allowed).

    ``kind="adapter"`` checks for a peft adapter (``adapter_config.json``) instead.
    """
    path = Path(reference).expanduser()
    if path.exists() or not is_hub_id(reference):
        if not path.is_dir():
            raise CheckpointUnavailableError(f"{kind} directory {reference!r} does not exist")
        return _check_directory(path, reference, kind)
    try:
        import huggingface_hub
        from huggingface_hub import errors
    except ImportError as error:  # pragma: no cover - a transformers dependency
        raise MissingDependencyError("hub checkpoints need: pip install huggingface_hub") from error
    hint = "or point --checkpoint (DOCVLM_<TASK>_CHECKPOINT) at a local directory"
    probe = None if offline else _HubProbe()
    try:
        local = huggingface_hub.snapshot_download(
            reference, allow_patterns=_PATTERNS, cache_dir=cache_dir, local_files_only=True
        )
        return _check_directory(Path(local), reference, kind)
    except (errors.LocalEntryNotFoundError, FileNotFoundError):
        if offline:
            raise CheckpointUnavailableError(
                f"checkpoint {reference!r} is not in the cache and offline mode is on; {hint}"
            ) from None
    if probe is not None and not probe.reachable():
        raise CheckpointUnavailableError(
            f"checkpoint {reference!r} is not in the cache and the Hugging Face Hub cannot be "
            f"reached (no network?); {hint}"
        )
    try:
        local = huggingface_hub.snapshot_download(
            reference, allow_patterns=_PATTERNS, cache_dir=cache_dir
        )
    except errors.GatedRepoError:
        raise CheckpointUnavailableError(
            f"checkpoint {reference!r} is gated: accept the Gemma licence at "
            f"https://huggingface.co/{reference} and log in (`hf auth login`), {hint}"
        ) from None
    except errors.RepositoryNotFoundError:
        raise CheckpointUnavailableError(
            f"checkpoint {reference!r} was not found on the hub (or needs a login); {hint}"
        ) from None
    except Exception as error:  # network failures come from several libraries
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointUnavailableError(
            f"cannot download checkpoint {reference!r} from the Hugging Face Hub ({reason}); "
            f"it needs hub access and the accepted Gemma licence, {hint}"
        ) from None
    return _check_directory(Path(local), reference, kind)


def weight_files(path: Path) -> list[Path]:
    """The checkpoint's safetensors files: the shards its index names, or
    ``model.safetensors``; each one inside ``path``, or ``CheckpointUnavailableError``."""
    index = path / "model.safetensors.index.json"
    if not index.is_file():
        single = path / "model.safetensors"
        return [single] if single.is_file() else []
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        names = set(weight_map.values())
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise CheckpointUnavailableError(
            f"{index}: not a shard index ({_first_line(error)})"
        ) from None
    return [_shard(path, index, name) for name in sorted(names, key=str)]


def _shard(folder: Path, index: Path, name: object) -> Path:
    if not isinstance(name, str) or not name.endswith(".safetensors"):
        raise CheckpointUnavailableError(
            f"{index}: shard {name!r} is not a .safetensors file (docvlm loads safetensors only)"
        )
    file = folder / name
    if Path(name).is_absolute() or not _inside(file, folder, _roots(folder)):
        raise CheckpointUnavailableError(
            f"{index}: shard {name!r} is outside the checkpoint's folder {folder}"
        )
    if not file.is_file():
        raise CheckpointUnavailableError(f"{index}: shard {name!r} is missing from {folder}")
    return file


def _roots(folder: Path) -> tuple[Path, ...]:
    """Where a shard's links may lead: the checkpoint's folder and, for a snapshot in the
    Hugging Face cache (``models--ORG--NAME/snapshots/REV``), that model's ``blobs``."""
    roots = [folder]
    if folder.parent.name == "snapshots" and folder.parent.parent.name.startswith("models--"):
        roots.append(folder.parent.parent / "blobs")
    return tuple(roots)


def _inside(file: Path, folder: Path, roots: tuple[Path, ...]) -> bool:
    """Whether ``file``'s name stays inside ``folder`` and, its links followed, it lies
    under one of ``roots`` (a loop does not)."""
    if not os.path.normpath(file).startswith(os.path.normpath(folder) + os.sep):
        return False
    try:
        target = file.resolve()
        return any(target.is_relative_to(root.resolve()) for root in roots)
    except (OSError, RuntimeError):
        return False


def check_weights(files: list[Path]) -> None:
    """Each file's safetensors header read (not its tensors): a damaged or truncated
    file is ``CheckpointUnavailableError`` naming it."""
    from safetensors import safe_open

    for file in files:
        try:
            with safe_open(str(file), framework="pt", device="cpu") as reader:
                reader.keys()
        except Exception as error:  # SafetensorError, OSError and kin
            raise CheckpointUnavailableError(
                f"{file}: not a readable safetensors file ({_first_line(error)})"
            ) from None


def _first_line(error: BaseException) -> str:
    text = str(error)
    return text.splitlines()[0] if text else type(error).__name__
