"""Per-position sampled softmax: gathered negatives vs the whole table's logits, by catalog size.

With ``loss.uniform_sharing=position`` every supervised position scores its own R uniform negatives.
:class:`argusrec.models.nip_loss.SampledNextItemLoss` computes their logits one of two ways, with the same
loss and gradients (tests/test_losses.py):

* ``gather``: look up the (M, R, D) negative vectors and take M matrix-vector products (memory-bound:
  M x R x D floats written, read, and scattered back into the table's gradient);
* ``table``: the (M, V + 1) logits of the whole table, then pick each row's R (compute-bound: an
  M x (V + 1) x D product forward and two backward).

and picks ``table`` when ``argusrec.losses.table_is_cheaper(V, R)`` (V + 1 <= 80 R). This benchmark times
one forward + backward of the loss (query and table as leaves, no model) for both paths at several V, so
that the rule's crossover is measured, and, for reference, the same loss with R negatives shared by the
batch (the ARGUS default). Median of ``--repeats`` timings after one warm-up, paths interleaved.

    python benchmarks/nip_loss_paths.py --threads 1                  # M 750, R 256, D 256 (Beauty-like batch)
    python benchmarks/nip_loss_paths.py --catalogs 12101,60000 --repeats 3
    python benchmarks/nip_loss_paths.py --render-only

Writes benchmarks/results/nip_loss_paths.json (records of the same hardware and shape are replaced) and the
``nip_loss_paths`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import ROOT, read_results, record, write_results, write_section

sys.path.insert(1, str(ROOT))

BENCH = "nip_loss_paths"
PATHS = ("gather", "table", "shared")


def time_paths(m: int, r: int, d: int, v: int, repeats: int, seed: int) -> dict[str, float]:
    """Median seconds of one loss forward + backward per path, for M positions, R negatives, D width, V items."""
    import torch

    from argusrec.losses import sampled_softmax_loss

    g = torch.Generator().manual_seed(seed)
    table = torch.randn(v + 1, d, generator=g).mul_(0.1).requires_grad_(True)
    query = torch.randn(m, d, generator=g).requires_grad_(True)
    positives = torch.randint(1, v + 1, (m,), generator=g)

    def step(path: str) -> float:
        table.grad = query.grad = None
        start = time.perf_counter()
        negatives: torch.Tensor | None
        item_table: torch.Tensor | None
        if path == "shared":
            ids = torch.randint(1, v + 1, (r,), generator=g)
            negatives, item_table = table[ids], None
        else:
            ids = torch.randint(1, v + 1, (m, r), generator=g)
            negatives, item_table = (table[ids], None) if path == "gather" else (None, table)
        loss = sampled_softmax_loss(
            query, table[positives], positives, negatives, ids, temperature=1.0, item_table=item_table
        )
        loss.backward()
        return time.perf_counter() - start

    times: dict[str, list[float]] = {p: [] for p in PATHS}
    for p in PATHS:
        step(p)  # warm-up
    for _ in range(repeats):
        for p in PATHS:
            times[p].append(step(p))
    return {p: statistics.median(t) for p, t in times.items()}


def _key(r: dict) -> tuple:
    """One record per hardware, shape and catalog size: a rerun replaces it."""
    return r["hardware"], r["shape"], r["catalog"]


def render(records: list[dict]) -> None:
    from argusrec.losses import table_is_cheaper

    lines = [
        "## Per-position negatives: gathered vs whole-table logits (`benchmarks/nip_loss_paths.py`)",
        "",
        "One forward + backward of the sampled softmax with R negatives drawn per position (M positions,",
        "D width, V items), computed by gathering the (M, R, D) negative vectors or from the (M, V + 1) logits",
        "of the whole table (same loss and gradients); `shared` = R negatives shared by the batch, for",
        "reference. Median seconds; `chosen` = the path `table_is_cheaper(V, R)` picks (V + 1 <= 80 R).",
        "",
    ]
    for hw in sorted({r["hardware"] for r in records}):
        rows = sorted((r for r in records if r["hardware"] == hw), key=lambda r: (r["shape"], r["catalog"]))
        commits = ", ".join(sorted({r["commit"] for r in rows}))
        lines += [f"Hardware: {hw}, {rows[0]['threads']} thread(s); commit(s) {commits}; {rows[0].get('note', '')}", ""]
        lines += [
            "| M, R, D | V | gather s | table s | table / gather | shared s | chosen |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for r in rows:
            t = r["metrics"]
            chosen = "table" if table_is_cheaper(r["catalog"], r["negatives"]) else "gather"
            lines.append(
                f"| {r['shape']} | {r['catalog']:,} | {t['gather_s']:.3f} | {t['table_s']:.3f} | "
                f"{t['table_s'] / t['gather_s']:.2f} | {t['shared_s']:.3f} | {chosen} |"
            )
        lines.append("")
    write_section(BENCH, "\n".join(lines).rstrip() + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--positions", type=int, default=750, help="M (a Beauty batch of 128 users: ~750)")
    ap.add_argument("--negatives", type=int, default=256, help="R")
    ap.add_argument("--dim", type=int, default=256, help="D")
    ap.add_argument("--catalogs", default="12101,18357,30000,60000,200000", help="V values, comma-separated")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--note", default="", help="run conditions (how busy the machine was)")
    ap.add_argument("--render-only", action="store_true")
    args = ap.parse_args()
    records = read_results(BENCH)
    if not args.render_only:
        import torch

        torch.set_num_threads(args.threads)
        shape = f"{args.positions}, {args.negatives}, {args.dim}"
        for v in (int(c) for c in args.catalogs.split(",")):
            t0 = time.perf_counter()
            t = time_paths(args.positions, args.negatives, args.dim, v, args.repeats, seed=v)
            print(f"V {v:>8,}: " + "  ".join(f"{p} {s:.3f}s" for p, s in t.items()), flush=True)
            rec = record(
                BENCH,
                "synthetic",
                "sampled_softmax",
                {f"{p}_s": s for p, s in t.items()},
                time.perf_counter() - t0,
                shape=shape,
                catalog=v,
                negatives=args.negatives,
                threads=args.threads,
                note=args.note,
            )
            records = write_results(BENCH, [*records, rec], key=_key)
    render(records)


if __name__ == "__main__":
    main()
