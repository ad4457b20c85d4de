"""Shipped models and loading: a model is a folder with config.json, tokenizer.safetensors (fp16) and
prior_int8.safetensors (the integer-exact prior, intprior.py); its identity is the SHA-256 of those
three files. A hierarchy (config.json "fine", hierarchy.py) adds fine.safetensors (the fine side, fp16)
and fine_prior_int8.safetensors (its grid's integer prior, intfineprior.py), and its identity covers
them too. A model may also read the files of earlier models whose codebooks and prior it shares
(config.json "reads_files_of", checked by the export): only its decoder differs, so their token grids
decode exactly and are drawn by its decoder. A folder may leave out files that a shipped model's folder
holds byte for byte, naming that model in shared_files.json (families.model_file): its identity is the
same as with its own copies, and the package carries each file once."""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .defaults import DEFAULT_MODEL
from .hierarchy import FineCoder, FineConfig, Hierarchy
from .families import (MODEL_CONFIG, MODEL_TOKENIZER, SHARED_FILES, WEIGHTS_DIR, config_dict, model_file,
                       read_tokenizer, shared_files)
from .fineprior import FinePriorConfig
from .intfineprior import IntFinePrior
from .intprior import IntPrior
from .prior import PriorConfig
from .tokenizer import Tokenizer

CONFIG, TOKENIZER_WEIGHTS, PRIOR_WEIGHTS = FILES = (MODEL_CONFIG, MODEL_TOKENIZER, "prior_int8.safetensors")
FINE_WEIGHTS, FINE_PRIOR_WEIGHTS = FINE_FILES = ("fine.safetensors", "fine_prior_int8.safetensors")


def _version(folder: Path) -> tuple:
    """vqc-v10 after vqc-v6: the numbers in a name compare as numbers."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", folder.name))


# shipped models by name, newest first: every folder of vqcodec/weights that holds a model's config
MODELS = {p.name: p for p in sorted((p for p in WEIGHTS_DIR.iterdir() if (p / CONFIG).is_file()),
                                    key=_version, reverse=True)}
# Models that earlier versions shipped, by the 4-byte id their files carry: a file made by one says where
# its model can be found instead of only that it is unknown.
RETIRED_MODELS = {bytes.fromhex("42abd8b8"): "vqc-v1, shipped by vqcodec 0.2 (git tag v0.2.0)",
                  bytes.fromhex("ddd8affd"): "vqc-v4, shipped by vqcodec 0.8 and 0.9"}


class ModelNotFound(FileNotFoundError):
    pass


@dataclass
class Model:
    """A tokenizer and its prior, with the identity that .vqc files record; a hierarchy's model adds its
    fine side and the fine grid's prior, and its levels above `coarse_levels` store fine grids."""
    name: str
    tokenizer: Tokenizer
    prior: IntPrior
    identity: bytes  # SHA-256 of the model's files
    default_quality: int
    reads_files_of: dict[bytes, str]  # model id -> name of the earlier models whose files it decodes
    hierarchy: Hierarchy | None = None
    fine_prior: IntFinePrior | None = None

    def decodes_files_of(self, model_id: bytes) -> bool:
        """Whether a file carrying model_id decodes exactly with this model."""
        return model_id == self.model_id or model_id in self.reads_files_of

    @property
    def model_id(self) -> bytes:
        """The 4 bytes a .vqc file carries."""
        return self.identity[:4]

    @property
    def device(self) -> torch.device:
        return self.tokenizer.quantizer.codebooks.device

    @property
    def coarse_levels(self) -> int:
        """The levels that store only the coarse grid: all of them, but in a hierarchy's model."""
        return self.hierarchy.fine.cfg.coarse_levels if self.hierarchy else self.tokenizer.cfg.depth

    @property
    def levels(self) -> int:
        return self.coarse_levels + (self.hierarchy.fine.cfg.depth if self.hierarchy else 0)

    @property
    def fine_codebook_size(self) -> int:
        return self.hierarchy.fine.cfg.codebook_size if self.hierarchy else 0

    @property
    def downsample(self) -> int:
        return self.tokenizer.cfg.downsample

    @property
    def codebook_size(self) -> int:
        return self.tokenizer.cfg.codebook_size

    def grid_shape(self, width: int, height: int) -> tuple[int, int]:
        """(rows, columns) of the token grid of a width x height picture (padded to multiples of f)."""
        return -(-height // self.downsample), -(-width // self.downsample)

    def check_quality(self, quality: int | None) -> int:
        """The quality level to use: the model's default for None; ValueError outside 1..levels."""
        quality = self.default_quality if quality is None else quality
        if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= self.levels:
            raise ValueError(f"quality must be an integer from 1 to {self.levels} for model {self.name}, "
                             f"got {quality!r}")
        return quality

    def to(self, device: str | torch.device) -> "Model":
        self.tokenizer.to(device)
        self.prior.to(device)
        if self.hierarchy:
            self.hierarchy.to(device)
            self.fine_prior.to(device)
        return self


def model_files(folder: Path) -> tuple[str, ...]:
    """The files of a model folder, which its identity covers: a hierarchy's adds FINE_FILES. A config
    that cannot be read names none (reading the model says what is wrong with it)."""
    try:
        config = json.loads((folder / CONFIG).read_text())
    except (OSError, ValueError):
        return FILES
    return FILES + FINE_FILES if isinstance(config, dict) and "fine" in config else FILES


def _missing_files(folder: Path) -> list[str]:
    """The model's files that neither its folder nor the shipped model it shares them with holds."""
    def present(name: str) -> bool:
        try:
            return model_file(folder, name).is_file()
        except FileNotFoundError:
            return False
    return [name for name in model_files(folder) if not present(name)]


_identities: dict[tuple, tuple[bytes, frozenset[bytes]]] = {}


def _identity_and_reads(folder: Path) -> tuple[bytes, frozenset[bytes]]:
    """SHA-256 over the model's files and the ids of the models whose files it reads,
    remembered while the files are unchanged (decoding looks them up for every file)."""
    paths = [model_file(folder, name) for name in model_files(folder)]
    stats = tuple(path.stat() for path in paths)
    key = (str(Path(folder).resolve()), *((str(path), st.st_size, st.st_mtime_ns) for path, st in zip(paths, stats)))
    if key not in _identities:
        h, shared = hashlib.sha256(), shared_files(folder)
        for path in paths:
            data = path.read_bytes()
            expected = shared.get(path.name, {}).get("sha256") if path.parent != Path(folder) else None
            if expected is not None and hashlib.sha256(data).hexdigest() != expected:
                raise ValueError(f"{folder} shares {path.name} with model {shared[path.name]['model']}, whose "
                                 "copy has changed since: reinstall vqcodec")
            h.update(data)
        reads = json.loads((folder / CONFIG).read_text()).get("reads_files_of", {})
        _identities[key] = h.digest(), frozenset(bytes.fromhex(k) for k in reads)
    return _identities[key]


def model_identity(folder: Path) -> bytes:
    """SHA-256 over the model's files (model_files)."""
    return _identity_and_reads(folder)[0]


def _resolve(name: str | Path | None) -> tuple[str, Path]:
    name = DEFAULT_MODEL if name is None else name
    shipped = str(name) in MODELS
    label, folder = (str(name), MODELS[str(name)]) if shipped else (Path(name).name, Path(name))
    missing = _missing_files(folder)
    if missing and shipped:
        raise ModelNotFound(f"the shipped model '{name}' lacks {', '.join(missing)} in {folder}: "
                            "the installation is incomplete (reinstall vqcodec)")
    shared = shared_files(folder)
    elsewhere = sorted({shared[f]["model"] for f in missing if f in shared})
    if missing and elsewhere:
        raise ModelNotFound(f"model '{label}' in {folder} shares {', '.join(missing)} with {', '.join(elsewhere)}, "
                            "which this vqcodec does not ship: use the vqcodec it was made with")
    if missing:
        raise ModelNotFound(f"no model '{name}': give one of {', '.join(MODELS)} or a folder with {', '.join(FILES)}")
    return label, folder


_cache: dict[tuple[Path, str, bytes], Model] = {}


def load_model(name: str | Path | None = None, device: str = "cpu") -> Model:
    """A shipped model by name (default: the newest, DEFAULT_MODEL) or a model folder, in float32 on `device`."""
    label, folder = _resolve(name)
    try:
        key = (folder.resolve(), str(device), model_identity(folder))  # a folder written anew is another model
        if key not in _cache:
            _cache[key] = _read_model(label, folder).to(device)
    except (AttributeError, KeyError, TypeError, ValueError, RuntimeError, SafetensorError) as e:
        # a damaged or foreign folder: say so in one line, not somewhere deep inside torch
        fix = "reinstall vqcodec" if str(name) in MODELS else "export it again (vqcodec train export)"
        why = " ".join(line.strip() for line in str(e).splitlines())
        why = why if len(why) <= 200 else why[:200] + "…"
        raise ModelNotFound(f"model '{label}' in {folder} cannot be read ({type(e).__name__}: {why}); {fix}") from None
    return _cache[key]


def _read_model(label: str, folder: Path) -> Model:
    tokenizer, cfg = read_tokenizer(folder)
    tokenizer.eval().requires_grad_(False)
    prior = IntPrior(PriorConfig.from_dict(cfg["prior"]), load_file(str(model_file(folder, PRIOR_WEIGHTS))))
    reads = {bytes.fromhex(k): v for k, v in cfg.get("reads_files_of", {}).items()}
    hierarchy = fine_prior = None
    if "fine" in cfg:
        hierarchy = Hierarchy(tokenizer, FineConfig.from_dict(cfg["fine"])).eval().requires_grad_(False)
        hierarchy.fine.load_state_dict({k: v.float() for k, v in load_file(str(model_file(folder, FINE_WEIGHTS))).items()})
        fine_prior = IntFinePrior(FinePriorConfig.from_dict(cfg["fine_prior"]), load_file(str(model_file(folder, FINE_PRIOR_WEIGHTS))))
    return Model(label, tokenizer, prior, model_identity(folder), cfg.get("default_quality", 1), reads, hierarchy,
                 fine_prior)


def resolve_model(model: "Model | str | Path | None", device: str | torch.device | None = None) -> Model:
    """A Model as given, or the shipped model / model folder it names (default: the shipped default) loaded
    on `device` (default: the CPU). A device that is not a given Model's own is refused, not ignored: move
    the model with Model.to(device) first."""
    if not isinstance(model, Model):
        return load_model(model, device or "cpu")
    if device is not None and not _same_device(torch.device(device), model.device):
        raise ValueError(f"model {model.name} is on {model.device}, not on {device}: move it with "
                         f".to({str(device)!r}) or leave device out")
    return model


def _same_device(asked: torch.device, actual: torch.device) -> bool:
    """"cuda" names whichever CUDA device the model is on; "cuda:1" only that one."""
    return asked.type == actual.type and (asked.index is None or asked.index == actual.index)


def find_model_by_id(model_id: bytes) -> str | None:
    """The shipped model whose identity starts with model_id or that reads that model's files, if any."""
    for name, folder in MODELS.items():
        if _missing_files(folder):
            continue
        identity, reads = _identity_and_reads(folder)
        if identity[:4] == model_id or model_id in reads:
            return name
    return None


def share_files(folder: Path, shipped: str) -> list[str]:
    """Leave out of a model folder the files that the shipped model `shipped` holds byte for byte, naming
    that model for them in shared_files.json instead; returns their names. The identity stays the same."""
    folder, identity = Path(folder), model_identity(Path(folder))
    if shipped not in MODELS or shared_files(MODELS[shipped]):
        raise ValueError(f"{shipped} is not a shipped model that holds all of its own files")
    shared = shared_files(folder)
    for name in model_files(folder):
        mine, theirs = folder / name, MODELS[shipped] / name
        if name == CONFIG or not (mine.is_file() and theirs.is_file()):
            continue
        data = mine.read_bytes()
        if data == theirs.read_bytes():
            shared[name] = {"model": shipped, "sha256": hashlib.sha256(data).hexdigest()}
    (folder / SHARED_FILES).write_text(json.dumps(shared, indent=1, sort_keys=True) + "\n")
    for name in shared:
        (folder / name).unlink(missing_ok=True)
    assert model_identity(folder) == identity
    return sorted(shared)


def export_model(folder: Path, tokenizer: Tokenizer, prior_cfg: PriorConfig, prior_tensors: dict[str, torch.Tensor],
                 extra: dict | None = None, fine: FineCoder | None = None,
                 fine_prior: tuple[FinePriorConfig, dict[str, torch.Tensor]] | None = None) -> bytes:
    """Write a model folder: the tokenizer in fp16, the integer prior's tensors (train/quantize.py)
    as they are, and for a hierarchy its fine side in fp16 and the fine grid's integer prior; returns
    its identity."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {"tokenizer": config_dict(tokenizer.cfg), "prior": prior_cfg.to_dict(), **(extra or {})}
    if (fine is None) != (fine_prior is None):
        raise ValueError("a hierarchy's model needs both its fine side and the fine grid's prior")
    if fine is not None:
        config |= {"fine": fine.cfg.to_dict(), "fine_prior": fine_prior[0].to_dict()}
        save_file({k: v.detach().half().contiguous() for k, v in fine.state_dict().items()}, str(folder / FINE_WEIGHTS))
        save_file(fine_prior[1], str(folder / FINE_PRIOR_WEIGHTS))
    (folder / CONFIG).write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")
    save_file({k: v.detach().half().contiguous() for k, v in tokenizer.state_dict().items()}, str(folder / TOKENIZER_WEIGHTS))
    save_file(prior_tensors, str(folder / PRIOR_WEIGHTS))
    return model_identity(folder)
