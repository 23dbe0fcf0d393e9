"""A catalog is untrusted input: it cannot make lookbench read files outside its folder or fetch internal URLs, and one
hostile row costs that row, never the batch. Each test here failed on the code before these defences."""
import http.server
import io
import json
import threading
import time
from pathlib import Path

import duckdb
import pytest
from PIL import Image

from lookbench.catalog import QualityConfig, check_batch
from lookbench.cli import main
from lookbench.images import open_image
from lookbench.warehouse import connect

COLUMNS = ['--id', 'sku', '--image', 'img', '--text', 'title', '--label', 'category']


def png(colour='navy', size=32)->bytes:
    buf = io.BytesIO()
    Image.new('RGB', (size, size), colour).save(buf, 'PNG')
    return buf.getvalue()


def catalog(folder:Path, hostile:list[dict], good:int=40)->list[dict]:
    "Good rows with real images in `folder`/imgs, then the hostile rows"
    (folder / 'imgs').mkdir(parents=True, exist_ok=True)
    rows = []
    for k in range(good):
        (folder / 'imgs' / f'p{k}.png').write_bytes(png(('navy', 'red')[k % 2]))
        rows.append(dict(sku=f'SKU-{k:03d}', img=f'imgs/p{k}.png', title=f'product number {k}',
                         category=('Shirts', 'Jeans')[k % 2]))
    return rows + hostile


def ingest(capsys, manifest:Path, warehouse:Path, *extra):
    rc = main(['ingest', 'manifest', str(manifest), *COLUMNS, '--max-quarantine-pct', '100', '--warehouse', str(warehouse),
               *extra])
    out = capsys.readouterr()
    return rc, out.out, out.err


def quarantine(warehouse:Path)->dict:
    with connect(warehouse, read_only=True) as con:
        rows = con.execute('SELECT item_id, reason, detail, image FROM quarantine ORDER BY source_row').fetchall()
    return {r[0]: dict(reason=r[1], detail=r[2], image=r[3]) for r in rows}


def write_jsonl(path:Path, rows:list[dict])->Path:
    path.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    return path


def test_paths_outside_the_catalog_folder_are_never_read(tmp_path, capsys):
    secret = tmp_path / 'secret.txt'
    secret.write_text('password=hunter2')
    folder = tmp_path / 'shop'
    rows = catalog(folder, [dict(sku='EVIL-1', img='../../../../../../etc/passwd', title='traversal', category='Shirts'),
                            dict(sku='EVIL-2', img='/etc/hostname', title='absolute path', category='Shirts'),
                            dict(sku='EVIL-3', img='imgs/link.png', title='symlink out', category='Shirts'),
                            dict(sku='EVIL-4', img='../secret.txt', title='sibling file', category='Shirts')])
    (folder / 'imgs' / 'link.png').symlink_to(secret)
    rc, out, err = ingest(capsys, write_jsonl(folder / 'm.jsonl', rows), tmp_path / 'w.duckdb')
    assert rc == 0, err
    q = quarantine(tmp_path / 'w.duckdb')
    assert {k: v['reason'] for k, v in q.items()} == {f'EVIL-{i}': 'image_outside_root' for i in range(1, 5)}
    assert all(v['image'] is None for v in q.values())
    with connect(tmp_path / 'w.duckdb', read_only=True) as con:  # nothing of those files is anywhere in the warehouse
        dump = str(con.execute('SELECT * FROM quarantine').fetchall()) + str(con.execute('SELECT * FROM items').fetchall())
    assert 'hunter2' not in dump and 'root:x:0' not in dump
    # a wider image root is the user's explicit choice
    rc, out, err = ingest(capsys, write_jsonl(folder / 'm.jsonl', rows), tmp_path / 'w2.duckdb', '--image-root', str(tmp_path))
    assert rc == 0 and quarantine(tmp_path / 'w2.duckdb')['EVIL-4']['reason'] == 'image_unreadable'


def test_bytes_that_do_not_decode_are_stored_nowhere(tmp_path, capsys):
    folder = tmp_path / 'shop'
    rows = catalog(folder, [dict(sku='BAD-1', img='imgs/notes.png', title='not an image', category='Shirts'),
                            dict(sku='BAD-2', img='imgs/small.png', title='tiny image', category='Shirts')])
    (folder / 'imgs' / 'notes.png').write_text('confidential: not an image')
    (folder / 'imgs' / 'small.png').write_bytes(png(size=8))
    assert ingest(capsys, write_jsonl(folder / 'm.jsonl', rows), tmp_path / 'w.duckdb')[0] == 0
    q = quarantine(tmp_path / 'w.duckdb')
    assert q['BAD-1']['reason'] == 'image_unreadable' and q['BAD-1']['image'] is None
    assert 'imgs/notes.png' in q['BAD-1']['detail'] and '<_io.BytesIO' not in q['BAD-1']['detail']  # names the file
    assert q['BAD-2']['reason'] == 'image_too_small'
    open_image(q['BAD-2']['image'])  # kept for the report: it decodes


@pytest.fixture
def server():
    "A small HTTP server on 127.0.0.1: a secret, an endless body, a slow drip, and a real image"
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args): pass
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            if self.path == '/secret':
                self.wfile.write(b'internal admin token 1234')
            elif self.path == '/endless':
                try:
                    while True:
                        self.wfile.write(b'\0' * 65536)
                except OSError:
                    pass
            elif self.path == '/drip':
                try:
                    for _ in range(60):
                        self.wfile.write(b'x')
                        self.wfile.flush()
                        time.sleep(0.5)
                except OSError:
                    pass
            else:
                self.wfile.write(png())
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{srv.server_address[1]}'
    srv.shutdown()


def test_internal_urls_are_refused_unless_allowed(tmp_path, capsys, server):
    folder = tmp_path / 'shop'
    rows = catalog(folder, [dict(sku='URL-1', img=f'{server}/secret', title='internal url', category='Shirts'),
                            dict(sku='URL-2', img=f'{server}/photo.png', title='internal photo', category='Jeans')])
    manifest = write_jsonl(folder / 'm.jsonl', rows)
    assert ingest(capsys, manifest, tmp_path / 'w.duckdb')[0] == 0
    q = quarantine(tmp_path / 'w.duckdb')
    assert {q[k]['reason'] for k in ('URL-1', 'URL-2')} == {'image_fetch_failed'}
    assert 'non-public address (127.0.0.1): refused' in q['URL-1']['detail'] and 'token' not in str(q)
    assert ingest(capsys, manifest, tmp_path / 'w2.duckdb', '--allow-private-urls')[0] == 0  # the user's own server
    q = quarantine(tmp_path / 'w2.duckdb')
    assert 'URL-2' not in q and q['URL-1']['reason'] == 'image_unreadable' and q['URL-1']['image'] is None


def test_a_url_gets_a_byte_cap_and_a_deadline(tmp_path, server):
    rows = catalog(tmp_path, [dict(sku='BIG', img=f'{server}/endless', title='endless body', category='Shirts'),
                              dict(sku='SLOW', img=f'{server}/drip', title='one byte at a time', category='Shirts')])
    cfg = QualityConfig(allow_private_urls=True, fetch_timeout=2.0, max_image_bytes=5_000_000, max_quarantine_pct=100)
    t0 = time.monotonic()
    c = check_batch('manifest', write_jsonl(tmp_path / 'm.jsonl', rows), cfg=cfg, progress=False, id='sku', image='img',
                    text=['title'], label='category')
    assert time.monotonic() - t0 < 8  # the drip alone would take 30 s; the deadline is 2 s per URL
    q = c['quarantine'].set_index('item_id')
    assert 'more than the 5,000,000-byte cap' in q.loc['BIG', 'detail']
    assert 'no whole answer within 2 s' in q.loc['SLOW', 'detail']


def test_one_hostile_row_costs_that_row_not_the_batch(tmp_path, capsys):
    folder = tmp_path / 'shop'
    good = catalog(folder, [])
    header = 'sku,img,title,category\n'
    lines = [f"{r['sku']},{r['img']},{r['title']},{r['category']}\n" for r in good]
    hostile = [b'HUGE,imgs/p0.png,' + b'a' * 200_000 + b',Shirts\n',           # a field over csv's 131,072 limit
               b'BAD\xff\xfeID,imgs/p1.png,latin-1 bytes in the id,Shirts\n',  # not UTF-8
               b'LABEL,imgs/p2.png,latin-1 bytes in the label,Shi\xe9rts\n',
               b'LONGPATH,imgs/' + b'x' * 300 + b'.png,an image path over 255 characters,Shirts\n']
    (folder / 'm.csv').write_bytes(header.encode() + ''.join(lines).encode() + b''.join(hostile))
    rc, out, err = ingest(capsys, folder / 'm.csv', tmp_path / 'w.duckdb')
    assert rc == 0, err
    assert out.startswith(f'ingest: {len(good)} items accepted')
    reasons = sorted(v['reason'] for v in quarantine(tmp_path / 'w.duckdb').values())
    assert reasons == ['caption_too_long', 'id_invalid', 'image_path_invalid', 'label_invalid']


def test_nul_bytes_and_endless_captions_are_refused(tmp_path, capsys):
    folder = tmp_path / 'shop'
    rows = catalog(folder, [dict(sku='NUL\u0000ID', img='imgs/p0.png', title='a NUL byte in the id', category='Shirts'),
                            dict(sku='LONG', img='imgs/p1.png', title='x' * 200_000, category='Shirts')])
    assert ingest(capsys, write_jsonl(folder / 'm.jsonl', rows), tmp_path / 'w.duckdb')[0] == 0
    q = quarantine(tmp_path / 'w.duckdb')
    assert sorted(v['reason'] for v in q.values()) == ['caption_too_long', 'id_invalid']
    assert 'NUL\\x00ID' in q  # stored as an escape, readable


def test_parquet_image_bytes_are_images_not_paths(tmp_path, capsys):
    path = tmp_path / 'm.parquet'
    with duckdb.connect() as mem:
        mem.execute('CREATE TABLE m (sku VARCHAR, img BLOB, title VARCHAR, category VARCHAR)')
        for k in range(30):
            mem.execute('INSERT INTO m VALUES (?, ?, ?, ?)', [f'P{k}', png(('navy', 'red')[k % 2]), f'item {k}', 'Shirts'])
        mem.execute(f"COPY m TO '{path}' (FORMAT parquet)")
    rc, out, err = ingest(capsys, path, tmp_path / 'w.duckdb')
    assert rc == 0 and out.startswith('ingest: 30 items accepted'), err


@pytest.mark.parametrize('content', ['', 'sku,img,title,category\n'])
def test_an_empty_catalog_says_so(tmp_path, capsys, content):
    (tmp_path / 'm.csv').write_text(content)
    rc, out, err = ingest(capsys, tmp_path / 'm.csv', tmp_path / 'w.duckdb')
    assert rc == 2 and err.startswith(f"error: no rows in {tmp_path / 'm.csv'}") and err.count('\n') == 1
