"""Score new products with the promoted model in parallel shards, then load them into the warehouse in one transaction.

Runs here with no services:   make flow   (python flows/score_flow.py run --shards 2, with METAFLOW_USER set: root has none)
The same flow on a cluster:   python flows/score_flow.py run --with batch       (AWS Batch)
                              python flows/score_flow.py run --with kubernetes  (Kubernetes)
                              python flows/score_flow.py argo-workflows create  (scheduled on Argo)
Every step calls the library (`lookbench.score`): the flow only says what runs where.
"""
from metaflow import FlowSpec, Parameter, step


class ScoreFlow(FlowSpec):
    "Plan (what is unscored), score shards in parallel (foreach), join (one warehouse transaction, drift check)"
    warehouse = Parameter('warehouse', default='data/warehouse.duckdb', help='DuckDB warehouse file')
    model = Parameter('model', default='promoted', help="'promoted', a registered model id or spec, or any model spec")
    shards = Parameter('shards', default=2, help='parallel scoring shards')
    limit = Parameter('limit', default=0, help='score at most this many unscored items (0 = all)')
    batch_size = Parameter('batch_size', default=64, help='images per forward pass')
    staging = Parameter('staging', default='data/staging', help='folder where shards write Parquet for the join')
    device = Parameter('device', default='auto', help='auto, cpu or cuda')

    @step
    def start(self):
        from lookbench.warehouse import connect
        from lookbench.score import ScoreConfig, start_scoring, split_shards
        with connect(self.warehouse) as con:  # the only writer; closed before the shards open it read-only
            cfg = ScoreConfig(batch_size=self.batch_size, limit=self.limit or None)
            plan = start_scoring(con, self.model, cfg, device=self.device)
        plan.pop('model')  # a loaded model is not an artifact: each shard loads its own
        self.plan, self.todo = plan, len(plan['todo'])
        self.shard_ids = split_shards(plan.pop('todo'), self.shards)
        print(f"{self.todo} items to score for {plan['target']['model_id']} in {len(self.shard_ids)} shard(s)")
        self.next(self.score_shard, foreach='shard_ids')

    @step
    def score_shard(self):
        import time
        from lookbench.warehouse import connect
        from lookbench.registry import load_resolved
        from lookbench.score import ScoreConfig, build_classifiers, score_items, stage_scores
        t0, self.staged = time.perf_counter(), None
        if self.input:
            with connect(self.warehouse, read_only=True) as con:
                model = load_resolved(dict(self.plan['target']), self.device)
                frames = score_items(con, model, self.plan['target']['model_id'], list(self.input),
                                     build_classifiers(model, self.plan['label_sets']), self.plan['run_id'],
                                     ScoreConfig(**self.plan['cfg']), self.plan['label_sets'])
            self.staged = stage_scores(frames, f"{self.staging}/{self.plan['run_id']}", f'shard-{self.index}')
        self.seconds = time.perf_counter() - t0
        self.next(self.join)

    @step
    def join(self, inputs):
        import shutil
        import time
        from lookbench.warehouse import connect
        from lookbench.registry import load_resolved
        from lookbench.score import finish_scoring, load_staged
        self.merge_artifacts(inputs, include=['plan', 'todo'])
        staged = [i.staged for i in inputs if i.staged]
        self.summary = dict(self.plan['target'], nothing_new=not staged, scored=0, quarantined=0)
        # a run id means work: new items, or an earlier batch whose drift check a killed run never made
        if self.plan['run_id']:
            t0 = time.perf_counter()
            model = load_resolved(dict(self.plan['target']), self.device)
            counts = dict(scored=0, quarantined=0)
            with connect(self.warehouse) as con:
                if staged:
                    counts = load_staged(con, staged, self.plan['target']['model_id'])
                r = finish_scoring(con, model, self.plan, counts['scored'], counts['quarantined'],
                                   max(i.seconds for i in inputs) + time.perf_counter() - t0)
            # loaded and committed: the warehouse has it all
            shutil.rmtree(f"{self.staging}/{self.plan['run_id']}", ignore_errors=True)
            flagged = bool(len(r['drift']) and r['drift'].flagged.any())
            self.summary = {k: v for k, v in r.items() if k != 'drift'} | dict(drift_flagged=flagged)
        self.next(self.end)

    @step
    def end(self):
        s = self.summary
        print("score flow: nothing new to score" if s['nothing_new'] else
              f"score flow: {s['scored']} items scored, {s['quarantined']} quarantined by {s['model_id']} "
              f"(run {s['run_id']}); drift flagged: {s['drift_flagged']}")


if __name__ == '__main__':
    ScoreFlow()
