"""The shape of the package: imports flow one way (down the layers, without cycles), the
report needs no Hydra, and the README's map of the tree is the tree."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import ftlab

SRC = Path(ftlab.__file__).resolve().parent
REPO = SRC.parents[1]


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """ftlab module -> the ftlab modules it imports, anywhere in it (function-level imports
    included: a cycle through a lazy import is still a cycle in the design)."""
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                    base = f"{base}.{node.module}" if node.module else base
                # `from pkg import sub` imports the submodule when there is one
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                    for a in node.names
                ]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and target.startswith("ftlab"):
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


#: The package's layers, top to bottom, by the first name under ``ftlab`` ("" is the package
#: itself): a module imports from its own layer or the ones below it, never from one above.
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    ("entry points", frozenset({"train", "evaluate", "report", "data_cli", "export"})),
    ("a run's set-up", frozenset({"config", "sweep", "tune", "loggers", "checkpoints"})),
    (
        "parts",
        frozenset(
            {
                "module", "optim", "trainable_state", "methods", "data", "tasks", "callbacks",
                "reporting", "asset_registry",
            }
        ),
    ),
    ("backbones", frozenset({"backbones"})),
    (
        "leaves",
        frozenset(
            {
                "", "assets", "atomic", "console", "errors", "hardware", "paths", "plain",
                "records", "settings", "wandb_env",
            }
        ),
    ),
)  # fmt: skip


def layer_of(module: str, layers=LAYERS) -> int | None:
    """The index in ``layers`` of an ftlab module's layer; None when no layer names it."""
    part = module.removeprefix("ftlab").removeprefix(".").split(".")[0]
    return next((i for i, (_, parts) in enumerate(layers) if part in parts), None)


def arrows_up(graph: dict[str, set[str]], layers=LAYERS) -> list[str]:
    """Every import in ``graph`` that runs from a layer up to one above it, as a sentence."""
    found = []
    for module, imported in sorted(graph.items()):
        for target in sorted(imported):
            low, high = layer_of(module, layers), layer_of(target, layers)
            if low is not None and high is not None and high < low:
                found.append(
                    f"{module} ({layers[low][0]}) imports {target}, which sits above it "
                    f"({layers[high][0]})"
                )
    return found


def test_the_layer_check_finds_an_arrow_up():
    wrong = {
        "ftlab.data.sources.hf_dataset": {"ftlab.config", "ftlab.errors"},
        "ftlab.config": {"ftlab.data.sources.shards"},
        "ftlab.data.sources.shards": set(),
        "ftlab.errors": set(),
    }
    assert arrows_up(wrong) == [
        "ftlab.data.sources.hf_dataset (parts) imports ftlab.config, which sits above it "
        "(a run's set-up)"
    ]
    assert layer_of("ftlab") == layer_of("ftlab.errors") == len(LAYERS) - 1
    assert layer_of("ftlab.newcomer") is None


def test_every_module_sits_in_a_layer():
    unplaced = sorted(m for m in import_graph() if layer_of(m) is None)
    assert not unplaced, f"add these to a layer of tests/test_structure.py's LAYERS: {unplaced}"


def test_no_import_runs_back_up_the_layers():
    """Function-level imports count: a lazy import is still an arrow in the design."""
    graph = import_graph()
    assert "ftlab.asset_registry" in graph["ftlab.config"]  # the graph reads lazy imports
    found = arrows_up(graph)
    assert not found, "imports that run back up:\n" + "\n".join(found)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_src_has_no_import_cycles():
    graph = import_graph()
    assert graph["ftlab.train"] >= {"ftlab.records", "ftlab.config"}  # the graph is read
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_only_the_records_module_spells_the_results_file():
    spelled = [
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if re.search(r"[\"']results\.json[\"']", p.read_text())
    ]
    assert spelled == ["records.py"]


def test_ftlab_report_runs_without_importing_hydra(tmp_path):
    run = tmp_path / "runs" / "0"
    run.mkdir(parents=True)
    record = {"model": "m", "method": "linear_probe", "data": "d", "seed": 0, "status": "done"}
    record.update({"test/acc": 0.5, "params/trainable": 10, "params/total": 100})
    (run / "results.json").write_text(json.dumps(record))
    code = (
        "import sys; from ftlab.report import main; rc = main([sys.argv[1]]); "
        "print('HYDRA' if any(m.split('.')[0] == 'hydra' for m in sys.modules) else 'NO-HYDRA'); "
        "sys.exit(rc)"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC.parent)}
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "runs" / "report.md").is_file()
    assert proc.stdout.strip().splitlines()[-1] == "NO-HYDRA"


def _readme_layout() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## How it is built", 1)[1]
    return section.split("```", 2)[1]


def test_readme_layout_names_every_part_of_the_package_and_nothing_else():
    layout = _readme_layout()
    named = set(re.findall(r"([a-z_]+(?:\.py|/))", layout))
    parts = {
        p.name + ("/" if p.is_dir() else "")
        for p in SRC.iterdir()
        if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").is_file()))
        and p.name != "__init__.py"
    }
    top = {"conf/", "src/", "ftlab/", "tests/", "experiments/"}
    assert parts - named == set(), "in src/ftlab but not in the README's layout"
    assert named - parts - top == set(), "in the README's layout but not in src/ftlab"
