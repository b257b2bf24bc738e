"""The family x method table: every method config on every backbone family the tests
build (tiny random-weight Hugging Face and timm models), two training steps each, or the
sentence it is refused with. Writes ``table.md`` next to this file.

    python experiments/families/table.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.methods import test_hf_families as hf  # noqa: E402
from tests.methods import test_timm_families as timm  # noqa: E402
from tests.methods.conftest import run_or_refuse  # noqa: E402

from ftlab.backbones import HFBackbone  # noqa: E402


def rows(work: Path):
    """(family, kind, backbone, batch) for every family of both tables."""
    for family in sorted(hf.FAMILIES):
        backbone = HFBackbone(str(hf.model_dir(family, work)), pretrained=False)
        kind = "HF decoder" if family in hf.DECODERS else "HF encoder"
        yield family, kind, backbone, hf._batch(backbone)
    for family in sorted(timm.FAMILIES):
        backbone = timm.template(family)
        yield family, f"timm {backbone.anatomy.family}", backbone, timm._batch(family)


def main() -> None:
    methods = sorted(p.stem for p in (ROOT / "conf" / "method").glob("*.yaml"))
    reasons: dict[str, int] = {}
    lines = [
        "| family | kind | " + " | ".join(methods) + " |",
        "|---|---|" + "---|" * len(methods),
    ]
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for family, kind, backbone, batch in rows(work):
            cells = []
            for name in methods:
                outcome = run_or_refuse(backbone, name, batch, work / "run")
                if outcome.startswith("refused: "):
                    sentence = outcome.removeprefix("refused: ").replace(backbone.label, "<model>")
                    outcome = f"refused ({reasons.setdefault(sentence, len(reasons) + 1)})"
                cells.append(outcome)
            lines.append(f"| {family} | {kind} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    ran = sum(line.count("| ran") for line in lines)
    refused = sum(line.count("refused (") for line in lines)
    out = [
        "# Every method config on every backbone family",
        "",
        f"Written by `python experiments/families/table.py` in {time.time() - started:.0f} s "
        "on the 2-core CPU: tiny random-weight models (the tests' tables in "
        "`tests/methods/test_hf_families.py` and `test_timm_families.py`), two AdamW steps "
        "per pair, frozen parameters checked bit-identical. "
        f"{ran} pairs ran, {refused} were refused with a sentence.",
        "",
        *lines,
        "",
        "## Refusals (`<model>` stands for the backbone's name)",
        "",
        *(f"{n}. {sentence}" for sentence, n in reasons.items()),
        "",
    ]
    (Path(__file__).parent / "table.md").write_text("\n".join(out))


if __name__ == "__main__":
    main()
