"""How well `lookbench curate` finds wrong labels: flip a known share of the demo catalog's category labels, analyse,
and compare the ranking with baselines measured in the same run.

    .venv/bin/python benchmarks/label_issues.py [--products 3000] [--flips 2 5 10]

The catalog is the demo's (Fashion-MNIST products with colours, patterns and titles), `--products` of them, embedded
and aligned once with the offline LiT model, which is promoted as a build would. For each flip rate, a copy of that
warehouse gets that share of its labels changed to another class at random (titles untouched: a real catalog's
title usually still names the product's type), then:

- random: items in a random order;
- zero-shot: the promoted model's low confidence in the given label (1 - p(label));
- image probe: 1 - p(label) of an out-of-fold logistic-regression probe on the image features (the plain baseline);
- curate, images only: lookbench's ranking (cleanlab over stacked evidence) without the titles' evidence;
- curate: the full analysis, as `lookbench curate` runs it.

Printed per method: AUROC of the score against the flips, precision at k (k = the number of flips), and for the
curate rows the precision and recall at the number cleanlab flags. Timings are for the whole analysis.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault('WANDB_MODE', 'disabled')
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import numpy as np  # noqa: E402 -- after the environment is set
import pandas as pd  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from lookbench.align import AlignConfig, align_model  # noqa: E402
from lookbench.catalog import ingest_catalog  # noqa: E402
from lookbench.curate import (CurateConfig, analyse_catalog, curation_items, feature_fingerprint,  # noqa: E402
                              label_issues, model_evidence, probe_evidence, stacked_probs)
from lookbench.embed import embed_images, embed_texts  # noqa: E402
from lookbench.models import load_model  # noqa: E402
from lookbench.registry import load_resolved, resolve_model  # noqa: E402
from lookbench.splits import assign_splits, class_names  # noqa: E402
from lookbench.warehouse import connect  # noqa: E402


def prepare(folder:Path, products:int)->Path:
    "The demo catalog of `products` items, embedded, aligned and promoted (once; flips are made on copies)"
    path = folder / 'clean.duckdb'
    with connect(path) as con:
        ingest_catalog(con, 'fashion-attributes', 'auto', progress=False, sample=products // 2)
        assign_splits(con, 10, [])
        lit = load_model('lit', 'cpu')
        embed_images(con, lit, progress=False)
        embed_texts(con, lit, [r[0] for r in con.execute('SELECT DISTINCT caption FROM items').fetchall()])
        align_model(con, lit, folder / 'models', AlignConfig())
    return path


def flip(con, share:float, seed:int=0)->set[str]:
    "Give `share` of the items another class, at random; return their ids"
    items = con.execute('SELECT item_id, label FROM items ORDER BY item_id').df()
    classes = class_names(con)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(items), size=int(round(share * len(items))), replace=False)
    new = [rng.choice([c for c in classes if c != items.label[i]]) for i in chosen]
    changes = pd.DataFrame({'item_id': items.item_id[chosen].to_numpy(), 'label': new})
    con.register('_flips', changes)
    con.execute('UPDATE items SET label = f.label FROM _flips f WHERE items.item_id = f.item_id')
    con.unregister('_flips')
    return set(changes.item_id)


def judged(name:str, score:np.ndarray, truth:np.ndarray, flagged:np.ndarray|None=None)->dict:
    "AUROC and precision at k of a ranking score against the flips; precision/recall at its own flags when it has them"
    k = int(truth.sum())
    top = np.argsort(-score, kind='stable')[:k]
    row = dict(method=name, auroc=roc_auc_score(truth, score), precision_at_k=truth[top].mean())
    if flagged is not None:
        hits = (flagged & truth).sum()
        row |= dict(flagged=int(flagged.sum()), precision=hits / max(flagged.sum(), 1), recall=hits / k)
    return row


def measure(clean:Path, folder:Path, pct:float)->list[dict]:
    "Every method's scores on a copy of the clean warehouse with `pct`% of its labels flipped"
    path = folder / f'flipped-{pct:g}.duckdb'
    shutil.copy(clean, path)
    with connect(path) as con:
        flipped = flip(con, pct / 100)
        t0 = time.perf_counter()
        result = analyse_catalog(con, CurateConfig(), device='cpu')
        seconds = time.perf_counter() - t0
        items, classes = curation_items(con), class_names(con)
        y = items.label.map(classes.index).to_numpy()
        truth = items.item_id.isin(flipped).to_numpy()
        probes = probe_evidence(con, items, classes, CurateConfig(), feature_fingerprint(con))
        target = resolve_model(con, 'promoted')
        view = model_evidence(con, load_resolved(target, 'cpu'), target['model_id'], items, classes)
    at_label = np.arange(len(y)), y
    images_only = label_issues(y, stacked_probs([probes['image'], view['zero_shot']], y, len(classes)))
    full = result['items'].set_index('item_id').loc[items.item_id]
    rows = [judged('random', np.random.default_rng(1).random(len(y)), truth),
            judged('zero-shot low confidence', 1 - view['zero_shot'][at_label], truth),
            judged('image probe self-confidence', 1 - probes['image'][at_label], truth),
            judged('curate, images only', images_only.label_score.to_numpy(), truth, images_only.label_issue.to_numpy()),
            judged('curate', full.label_score.to_numpy(), truth, full.label_issue.to_numpy().astype(bool))]
    return [dict(flips=f'{pct:g}%', n=len(y), seconds=round(seconds, 1)) | r for r in rows]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--products', type=int, default=3000)
    ap.add_argument('--flips', type=float, nargs='+', default=[2, 5, 10])
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        clean = prepare(Path(d), a.products)
        rows = [row for pct in a.flips for row in measure(clean, Path(d), pct)]
    table = pd.DataFrame(rows)
    print(table.to_markdown(index=False, floatfmt='.3f') if hasattr(table, 'to_markdown') else table.to_string())


if __name__ == '__main__':
    sys.exit(main())
