"""Fine-tune on one node or several: Metaflow's @parallel starts the nodes, torchrun the processes on each.

Runs here, one node:        make flow-finetune  (python flows/finetune_flow.py run --nproc 2, METAFLOW_USER set)
Two "nodes" on this host:   make flow-finetune NODES=2 NPROC=1
On a cluster (NOT TESTED):  python flows/finetune_flow.py run --nodes 2 --nproc 4 --with kubernetes:gpu=4
                            (or --with batch:gpu=4); every node must see --warehouse and --out on a shared
                            filesystem, and rank 0 (node 0) is the one that writes them.
Every process runs `lookbench finetune` (`lookbench.finetune.run_finetune`): the flow only says where.
"""
import subprocess

from metaflow import FlowSpec, Parameter, current, parallel, step

from lookbench.finetune import FinetuneConfig

DEFAULTS = FinetuneConfig()  # one source of the fine-tuning defaults: the flow runs the build's fine-tune


class FinetuneFlow(FlowSpec):
    "Start N nodes (@parallel), run torchrun on each, then report what the run registered"
    warehouse = Parameter('warehouse', default='data/warehouse.duckdb', help='DuckDB warehouse file (shared by nodes)')
    base = Parameter('base', default='promoted', help="model to start from: 'promoted', a registered id or a spec")
    out = Parameter('out', default='data/finetune-flow', help='checkpoint folder (shared by nodes)')
    nodes = Parameter('nodes', default=1, help='machines (Metaflow @parallel tasks)')
    nproc = Parameter('nproc', default=2, help='training processes per node (GPUs per node on a GPU cluster)')
    port = Parameter('port', default=29400, help="rendezvous port on node 0 (several nodes only)")
    epochs = Parameter('epochs', default=DEFAULTS.epochs, help='passes over the train pairs')
    batch_size = Parameter('batch_size', default=DEFAULTS.batch_size, help='pairs per micro-batch per process')
    lr = Parameter('lr', default='preset', help="AdamW peak learning rate; 'preset': the base's (FINETUNE_PRESETS)")
    lock = Parameter('lock', default=DEFAULTS.lock, help='none, image or text')
    unlock_last = Parameter('unlock_last', default='preset', help="train only the last N blocks of each unlocked "
                                                                  "tower (0: all); 'preset': the base's")
    max_train = Parameter('max_train', default=0, help='cap on train pairs (0 = all)')
    device = Parameter('device', default='auto', help='auto, cpu or cuda')
    resume = Parameter('resume', default=False, help='continue the run whose last.pt is in --out')

    @step
    def start(self):
        self.next(self.train, num_parallel=self.nodes)

    @parallel
    @step
    def train(self):
        from lookbench.distributed import torchrun_command
        args = ['finetune', '--warehouse', self.warehouse, '--base', self.base, '--out', self.out,
                '--epochs', str(self.epochs), '--batch-size', str(self.batch_size), '--lock', self.lock,
                '--device', self.device, '--resume' if self.resume else '--no-resume']
        args += ['--max-train', str(self.max_train)] if self.max_train else []
        args += ['--lr', str(self.lr)] if str(self.lr) != 'preset' else []
        args += ['--unlock-last', str(self.unlock_last)] if str(self.unlock_last) != 'preset' else []
        node = current.parallel
        cmd = torchrun_command(self.nproc, args, nnodes=node.num_nodes, node_rank=node.node_index,
                               endpoint=f'{node.main_ip}:{self.port}')
        print(f"node {node.node_index} of {node.num_nodes}: {' '.join(cmd)}", flush=True)
        subprocess.run(cmd, check=True)
        self.next(self.join)

    @step
    def join(self, inputs):
        from lookbench.warehouse import connect
        with connect(self.warehouse, read_only=True) as con:
            self.run = con.execute('''SELECT run_id, fingerprint, config->>'world_size', config->>'effective_batch'
                                      FROM runs WHERE kind = 'finetune' ORDER BY created_at DESC LIMIT 1''').fetchall()
        print(f"fine-tune run: {self.run}")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == '__main__':
    FinetuneFlow()
