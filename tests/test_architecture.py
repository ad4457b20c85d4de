"""ARCHITECTURE.md matches the code: its table names every module once, top-down, and a module imports
only modules below it (no cycles, no lazy imports needed to avoid them)."""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "vqcodec"


def table_rows() -> dict[str, int]:
    """Each module of ARCHITECTURE.md's table and its row, top = 0 (`train/` stands for the subpackage)."""
    rows = [line for line in (ROOT / "ARCHITECTURE.md").read_text().splitlines() if line.startswith("| `")]
    return {name.removesuffix(".py").rstrip("/"): i for i, row in enumerate(rows)
            for name in re.findall(r"`([\w/]+(?:\.py)?)`", row.split("|")[1])}


def imports_of(path: Path) -> set[str]:
    """The package's modules a file imports, anywhere in it (relative imports)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            inside_train = path.parent.name == "train"
            if node.level == 1 and inside_train:
                continue  # train/ importing train/
            top = (node.module or "").split(".")[0]
            # `from . import name`: a module, or a name of the package root (`__version__`), which
            # imports nothing eagerly
            found |= {top} if top else {a.name for a in node.names if (PACKAGE / f"{a.name}.py").exists()}
    return found


def test_the_table_names_every_module_once():
    rows = [line for line in (ROOT / "ARCHITECTURE.md").read_text().splitlines() if line.startswith("| `")]
    named = [n for row in rows for n in re.findall(r"`([\w/]+(?:\.py)?)`", row.split("|")[1])]
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"} | {"train"}
    assert sorted(n.removesuffix(".py").rstrip("/") for n in named) == sorted(modules)


def test_a_module_imports_only_modules_below_it():
    row = table_rows()
    for path in [*PACKAGE.glob("*.py"), *(PACKAGE / "train").glob("*.py")]:
        if path.stem == "__init__" and path.parent == PACKAGE:
            continue  # the package root re-exports lazily
        name = "train" if path.parent.name == "train" else path.stem
        for imported in imports_of(path):
            assert row[imported] >= row[name] and imported != name, f"{path.relative_to(ROOT)} imports {imported}"
