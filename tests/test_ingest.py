"Bad input gets a one-line error naming the file, and the last good warehouse is untouched."
import functools
import gzip
import http.server
import threading

import pytest

from lookbench.cli import main
from lookbench import data
from lookbench.data import IDX_FILES, download_fashion_mnist, read_idx, resolve_source
from lookbench.testing import write_idx
from lookbench.warehouse import LookbenchError, connect


def run_cli(capsys, *args):
    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def items_table(path):
    with connect(path, read_only=True) as con:
        return con.execute('SELECT * EXCLUDE (batch_id) FROM items ORDER BY item_id').fetchall()


def test_ingest_twice_is_idempotent(source, tmp_path, capsys):
    wh = tmp_path / 'w.duckdb'
    assert run_cli(capsys, 'ingest', 'fashion-mnist', str(source), '--warehouse', str(wh))[0] == 0
    first = items_table(wh)
    rc, out, _ = run_cli(capsys, 'ingest', 'fashion-mnist', str(source), '--warehouse', str(wh))
    assert rc == 0 and out.startswith('ingest: 160 items accepted') and out.count('\n') == 1
    assert items_table(wh) == first


@pytest.mark.parametrize('damage', ['truncate', 'garbage', 'bad_magic', 'count_mismatch'])
def test_corrupt_idx_file_is_named_and_warehouse_kept(source, tmp_path, capsys, damage):
    wh = tmp_path / 'w.duckdb'
    run_cli(capsys, 'ingest', 'fashion-mnist', str(source), '--warehouse', str(wh))
    before = items_table(wh)
    target = source / IDX_FILES['train'][0]
    raw = gzip.decompress(target.read_bytes())
    if damage == 'truncate':
        target.write_bytes(target.read_bytes()[:len(target.read_bytes()) // 2])
    if damage == 'garbage':
        target.write_bytes(b'\x00' * 100)
    if damage == 'bad_magic':
        target.write_bytes(gzip.compress(b'\x00\x00\x09\x03' + raw[4:]))
    if damage == 'count_mismatch':  # a valid file with fewer images than labels
        write_idx(target, read_idx(source / IDX_FILES['test'][0]))
    rc, _, err = run_cli(capsys, 'ingest', 'fashion-mnist', str(source), '--warehouse', str(wh))
    assert rc == 2 and err.startswith('error: ') and err.count('\n') == 1
    assert IDX_FILES['train'][0] in err
    assert items_table(wh) == before


def test_missing_folder_and_wrong_source(tmp_path, capsys):
    wh = str(tmp_path / 'w.duckdb')
    rc, _, err = run_cli(capsys, 'ingest', 'fashion-mnist', str(tmp_path / 'nope'), '--warehouse', wh)
    assert rc == 2 and 'nope does not exist' in err and 'apt-get install dataset-fashion-mnist' in err
    (tmp_path / 'wrong').mkdir()
    (tmp_path / 'wrong' / 'README').write_text('not the data')
    rc, _, err = run_cli(capsys, 'ingest', 'fashion-mnist', str(tmp_path / 'wrong'), '--warehouse', wh)
    assert rc == 2 and 'train-images-idx3-ubyte.gz is missing' in err
    assert not (tmp_path / 'w.duckdb').exists()


def test_auto_source_says_how_to_get_the_data(tmp_path, monkeypatch):
    monkeypatch.setattr(data, 'SOURCE_CANDIDATES', (str(tmp_path / 'a'), str(tmp_path / 'b')))
    with pytest.raises(LookbenchError, match='apt-get install dataset-fashion-mnist'):
        resolve_source('auto')


@pytest.fixture
def http_folder(source):
    "Serve the fixture folder on 127.0.0.1 (a stand-in for the dataset's official location)"
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(source))
    handler.log_message = lambda *a, **k: None
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{srv.server_address[1]}/'
    srv.shutdown()


def test_download_fallback(http_folder, tmp_path):
    dest = download_fashion_mnist(tmp_path / 'raw', base_url=http_folder, timeout=5)
    assert resolve_source(dest) == dest
    assert not list(dest.glob('*.part'))


def test_download_failure_is_one_clear_error(http_folder, tmp_path):
    with pytest.raises(LookbenchError, match='could not download .*/nothing/train-images'):
        download_fashion_mnist(tmp_path / 'raw', base_url=http_folder + 'nothing/', timeout=5)
