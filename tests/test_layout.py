"The library in src/ is exactly what the notebooks in nbs/ export, and the project's pins are where pip reads them."
import filecmp, shutil, subprocess, tomllib

from conftest import ROOT, BIN


def test_nbdev_export_reproduces_src(tmp_path):
    for name in ('nbs', 'settings.ini', 'pyproject.toml'):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    subprocess.run([str(BIN / 'nbdev_export')], cwd=tmp_path, check=True, capture_output=True)
    exported, committed = tmp_path / 'src' / 'lookbench', ROOT / 'src' / 'lookbench'
    names = sorted(p.name for p in committed.glob('*.py'))
    assert names == sorted(p.name for p in exported.glob('*.py'))
    _, mismatch, errors = filecmp.cmpfiles(committed, exported, names, shallow=False)
    assert not mismatch and not errors, f'src/ differs from nbdev_export of nbs/: {mismatch} — edit nbs/, run nbdev_export'


def test_pins_that_matter():
    deps = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']['dependencies']
    for pin in ('nbdev==2.4.14', 'fastcore<2', 'execnb<0.2', 'torch==2.14.1', 'torchvision==0.29.1', 'notebook<7', 'networkx<3.6'):
        assert pin in deps, pin
