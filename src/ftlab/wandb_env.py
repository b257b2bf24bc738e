"""Whether W&B can run online here: what the loggers and the sweep's dashboard both ask
(its own module, so neither imports the other)."""

from __future__ import annotations

import os
from pathlib import Path


def wandb_offline_reason() -> str | None:
    """Why W&B must run offline here, or None when credentials exist."""
    if os.environ.get("WANDB_MODE") in ("offline", "disabled"):
        return f"WANDB_MODE={os.environ['WANDB_MODE']}"
    if os.environ.get("WANDB_API_KEY"):
        return None
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    if netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore"):
        return None
    return "no W&B credentials (WANDB_API_KEY or `wandb login`)"
