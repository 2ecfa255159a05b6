"""The layers stay where a newcomer expects them: stage scripts do not import each other
(drivers may call a stage's `main`), `network/` imports nothing from `tool/`, and each
`tool/` package imports only from the packages below it."""
import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.stem for p in REPO.glob("*.py"))
DRIVERS = ("run_demo", "run_iterations")  # may run other stages through their main(argv)


def imports(path):
    """(module imported, names taken from it) for every import statement of a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


def attributes_used(path, module):
    """The attributes read from `module` (imported as a name) in a file."""
    tree = ast.parse(path.read_text())
    return {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name) and node.value.id == module}


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_do_not_import_scripts(script):
    path = REPO / f"{script}.py"
    for module, names in imports(path):
        if module.split(".")[0] not in SCRIPTS:
            continue
        assert script in DRIVERS, f"{script}.py imports the stage script {module}"
        assert names is None, f"{script}.py imports names from {module}; call its main(argv)"
        assert attributes_used(path, module) <= {"main"}, \
            f"{script}.py uses more of {module} than its main(argv)"


@pytest.mark.parametrize("path", sorted((REPO / "network").glob("*.py")), ids=lambda p: p.name)
def test_network_imports_nothing_from_tool(path):
    assert not [m for m, _ in imports(path) if m.split(".")[0] == "tool"]


# tool/ packages from the ground up; a package imports only from itself and those before it
TOOL_LAYERS = ("core", "data", "cam", "seg", "psa", "auxsegnet")


@pytest.mark.parametrize("package", TOOL_LAYERS)
def test_tool_packages_import_only_downwards(package):
    allowed = set(TOOL_LAYERS[:TOOL_LAYERS.index(package) + 1])
    for path in sorted((REPO / "tool" / package).glob("*.py")):
        used = {m.split(".")[1] for m, _ in imports(path) if m.startswith("tool.")}
        used |= {n for m, names in imports(path) if m == "tool" for n in names}
        assert used <= allowed, f"{path.relative_to(REPO)} imports tool.{sorted(used - allowed)}"


def test_every_tool_module_is_in_a_layer():
    assert {p.name for p in (REPO / "tool").iterdir() if p.is_dir() and p.name != "__pycache__"} \
        == set(TOOL_LAYERS)
    assert sorted(p.name for p in (REPO / "tool").glob("*.py")) == ["__init__.py"]
