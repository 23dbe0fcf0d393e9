"The batch job: `lookbench score` scores every item exactly once, quarantines what does not decode, and feeds search."
import pytest
from lookbench.cli import main
from lookbench.warehouse import connect


@pytest.mark.slow  # seconds of subprocesses or waiting: the full layer runs it, the fast one stays under 2 minutes
def test_cli_scores_once_quarantines_corrupt_images_and_says_when_nothing_is_new(scoring_catalog, capsys):
    wh = scoring_catalog['warehouse']
    with connect(wh) as con:
        broken = b'\x89PNG\r\n\x1a\n broken'
        con.execute("UPDATE items SET image = ?::BLOB WHERE item_id = 'fmnist-train-00007'", [broken])
    assert main(['score', '--limit', '50', '--chunk-size', '16', '--device', 'cpu', '--no-progress', '-w', wh]) == 0
    assert '49 items scored, 1 quarantined' in capsys.readouterr().out
    assert predictions(wh) == (49, 49)
    assert main(['score', '--chunk-size', '16', '--label-set', 'tone=dark,light', '--device', 'cpu', '--no-progress',
                 '-w', wh]) == 0
    out = capsys.readouterr().out
    # 110 new items, and the 49 old ones for the new label set
    assert '159 items scored, 0 quarantined' in out and scoring_catalog['model_id'] in out
    with connect(wh, read_only=True) as con:
        quarantined = con.execute("SELECT item_id, reason FROM score_quarantine").fetchall()
        assert quarantined == [('fmnist-train-00007', 'image_unreadable')]
        per_set = con.execute('''SELECT label_set, count(*), count(DISTINCT item_id), count(DISTINCT run_id)
                                 FROM predictions GROUP BY 1 ORDER BY 1''').fetchall()
        assert per_set == [('label', 159, 159, 2), ('tone', 159, 159, 1)]
        assert con.execute("SELECT count(*) FROM runs WHERE kind = 'score' AND status = 'finished'").fetchone()[0] == 2
    assert main(['score', '--label-set', 'tone=dark,light', '--device', 'cpu', '-w', wh]) == 0
    assert capsys.readouterr().out.strip() == f"score: nothing new to score for {scoring_catalog['model_id']}"
    # the scored embeddings answer searches: a text query, and products similar to one product
    assert main(['search', 'ankle boot', '-k', '3', '--device', 'cpu', '-w', wh]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ['item_id', 'score', 'label', 'caption'] and len(lines) == 4
    assert main(['similar', 'fmnist-test-00001', '-k', '2', '-w', wh]) == 0
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == 3 and 'fmnist-test-00001 ' not in out
    assert main(['similar', 'no-such-item', '-w', wh]) == 2
    assert "item 'no-such-item' has no embedding" in capsys.readouterr().err


def test_cli_score_needs_a_promoted_model(source, tmp_path, capsys):
    from lookbench.catalog import ingest_fashion_mnist
    wh = str(tmp_path / 'w.duckdb')
    with connect(wh) as con:
        ingest_fashion_mnist(con, source)
    assert main(['score', '-w', wh]) == 2
    assert 'no model is promoted in table `models`' in capsys.readouterr().err


def predictions(wh):
    with connect(wh, read_only=True) as con:
        sql = "SELECT count(*), count(DISTINCT item_id) FROM predictions WHERE label_set = 'label'"
        return con.execute(sql).fetchone()
