"""Defaults the command line shows in its help: kept free of torch so that `vqcodec --help` answers at once."""

DEFAULT_MODEL = "vqc-v8"   # the shipped model that compresses when none is named
DEFAULT_RD_LAMBDA = 0.1    # bits against the latent's squared error; chosen for vqc-v3 on Kodak, not re-tuned for later models (eval/results/prior.md)


def shipped_levels(name: str = DEFAULT_MODEL) -> tuple[int, int]:
    """(default, top) quality level of a shipped model, from its config alone."""
    import json
    from pathlib import Path

    config = json.loads((Path(__file__).parent / "weights" / name / "config.json").read_text())
    fine = config.get("fine")  # a hierarchy's levels: its coarse ones, then one per fine depth
    top = fine["coarse_levels"] + fine["depth"] if fine else config["tokenizer"]["depth"]
    return config.get("default_quality", 1), top
