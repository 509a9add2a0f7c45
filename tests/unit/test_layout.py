"""The layout stays readable: small modules and functions, every top-level folder named in the
README's layout table, and nothing but the mesh in ``mesh/``."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80


def tracked(pattern: str) -> list[Path]:
    """Files git tracks (or would: untracked and not ignored) matching ``pattern``."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", pattern],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [REPO / line for line in out.splitlines() if (REPO / line).is_file()]


def source_modules() -> list[Path]:
    return [p for p in tracked("*.py") if p.relative_to(REPO).parts[0] != "tests"]


def test_no_module_outside_tests_is_over_the_limit() -> None:
    long = {
        str(p.relative_to(REPO)): n
        for p in source_modules()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}, f"modules over {MAX_MODULE_LINES} lines: split them"


def test_no_function_outside_tests_is_over_the_limit() -> None:
    long = {}
    for path in source_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(REPO)}:{node.lineno} {node.name}"] = lines
    assert long == {}, f"functions over {MAX_FUNCTION_LINES} lines: split them"


def readme_layout() -> dict[str, str]:
    """The README's layout table: ``{top-level path: what lives there}``."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| (.+) \|$", section, re.M)
    return {path.rstrip("/"): what for path, what in rows}


def test_every_top_level_folder_is_in_the_readme_layout() -> None:
    parts = [p.relative_to(REPO).parts for p in tracked("*")]
    # dot-folders hold tools' settings (CI, editors), not the project's code
    folders = {f[0] for f in parts if len(f) > 1 and not f[0].startswith(".")}
    named = set(readme_layout())
    assert folders - named == set(), "top-level folders the README's layout table does not name"
    assert {n for n in named if "/" not in n and "." not in n} - folders == set(), (
        "the README's layout table names folders that do not exist"
    )


def test_mesh_holds_the_mesh_only() -> None:
    """No benchmark, trace store or CLI in ``mesh/``: each has a home of its own."""
    names = {p.relative_to(REPO / "mesh").as_posix() for p in tracked("mesh/*")}
    strays = {n for n in names if re.search(r"bench|trace_?store|tracestore|cli\.py|__main__", n)}
    assert strays == set(), "not the mesh: move them out of mesh/"
