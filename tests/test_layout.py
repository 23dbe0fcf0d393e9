"""The library in src/ is exactly what the notebooks in nbs/ export, its modules import in one direction only, it
passes the linter, and the environment holds the versions the project pins."""
import ast
import filecmp
import shutil
import subprocess
import tomllib
from importlib.metadata import version

from packaging.requirements import Requirement

from conftest import ROOT, BIN

SRC = ROOT / 'src' / 'lookbench'


def test_nbdev_export_reproduces_src(tmp_path):
    for name in ('nbs', 'settings.ini', 'pyproject.toml'):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    subprocess.run([str(BIN / 'nbdev_export')], cwd=tmp_path, check=True, capture_output=True)
    exported = tmp_path / 'src' / 'lookbench'
    names = sorted(p.name for p in SRC.glob('*.py'))
    assert names == sorted(p.name for p in exported.glob('*.py'))
    _, mismatch, errors = filecmp.cmpfiles(SRC, exported, names, shallow=False)
    hint = 'edit nbs/, then run nbdev_export'
    assert not mismatch and not errors, f'src/ differs from nbdev_export of nbs/: {mismatch}; {hint}'


def test_installed_versions_satisfy_the_pins():
    "The pins that matter are in pyproject.toml and hold here (nbdev 3, notebook 7 or networkx 3.6 would break us)"
    deps = [Requirement(d) for d in tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']['dependencies']]
    pinned = {r.name.lower(): r for r in deps if r.specifier}
    for name in ('nbdev', 'fastcore', 'execnb', 'torch', 'torchvision', 'notebook', 'networkx', 'duckdb', 'ploomber'):
        assert name in pinned, f'{name} is not pinned in pyproject.toml'
        installed = version(name)
        in_range = pinned[name].specifier.contains(installed, prereleases=True)
        assert in_range, f'{name} {installed} is outside {pinned[name]}'


def lookbench_imports(path)->set[str]:
    "Modules of lookbench that `path` imports, at the top or inside functions"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.level == 1:
                found.add(node.module.split('.')[0])
            elif node.module.startswith('lookbench.'):
                found.add(node.module.split('.')[1])
        if isinstance(node, ast.Import):
            found |= {a.name.split('.')[1] for a in node.names if a.name.startswith('lookbench.')}
    return found - {path.stem}


def test_modules_import_in_one_direction():
    "No import circle, not even one hidden in a function-level import: each stage builds only on earlier ones"
    graph = {p.stem: lookbench_imports(p) for p in SRC.glob('*.py') if not p.stem.startswith('_')}
    done, visiting = set(), []
    def visit(m):
        assert m not in visiting, f"import circle: {' -> '.join(visiting[visiting.index(m):] + [m])}"
        if m in done:
            return
        visiting.append(m)
        for dep in graph.get(m, ()):
            visit(dep)
        visiting.pop()
        done.add(m)
    for module in graph:
        visit(module)
    used_by_library = set().union(*(deps for m, deps in graph.items() if m != 'testing'))
    assert 'testing' not in used_by_library, 'fixtures are for tests and notebooks, not for the library'


def test_ruff_finds_nothing():
    "One idea per line: no joined statements, no line over 120 characters, no unused imports or names"
    p = subprocess.run([str(BIN / 'ruff'), 'check', 'src', 'tests', 'benchmarks', 'flows', 'scripts', '--output-format',
                        'concise'], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
