"""datatrove doing what kiln's data-prep pipeline does where datatrove has a step for it: BigCode's `basic` line
filters (longest line 1000, mean line 100, alphanumeric share 0.25, as kiln's defaults), its PIIFormatter (emails
and public IPv4 addresses) and a zstd JSON Lines writer; with --minhash, MinHash near dedup as well (datatrove's
four stages: signatures, buckets, clusters, filter; 5-grams, 25 bands x 10 rows as kiln's (0.7, 256) setting).

Run by bench/data-prep-pipeline.ts with the peers' Python (bench/peers/env.mjs):
    python datatrove_pipeline.py --input DIR --output DIR [--tasks N] [--minhash]
DIR holds the corpus as JSON Lines ({"content", "path"}); datatrove splits work by file, so the bench writes N
files for N tasks. Prints one JSON line: seconds and CPU seconds (this process and its
workers) of the executors' runs, not Python's start-up; documents written.
"""

import argparse
import json
import os
import resource
import time

from minhash_peers import code_word_tokenizer

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.filters import LambdaFilter
from datatrove.pipeline.formatters import PIIFormatter
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter


def basic_filter(doc) -> bool:
    text = doc.text
    if not text:
        return False
    lines = text.split("\n")
    if max(len(line) for line in lines) > 1000:
        return False
    if len(text) / len(lines) > 100:
        return False
    return sum(c.isalnum() for c in text) / len(text) >= 0.25


def count_docs(folder: str) -> int:
    import zstandard

    n = 0
    for name in os.listdir(folder):
        with open(os.path.join(folder, name), "rb") as f:
            n += sum(1 for _ in zstandard.ZstdDecompressor().stream_reader(f).read().splitlines() if _)
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--tasks", type=int, default=1)
    ap.add_argument("--minhash", action="store_true")
    a = ap.parse_args()
    out, logs = os.path.join(a.output, "out"), os.path.join(a.output, "logs")
    reader = lambda folder, **kw: JsonlReader(folder, text_key="content", id_key="path", **kw)  # noqa: E731
    clean = [LambdaFilter(basic_filter), PIIFormatter()]
    run = lambda name, pipeline, tasks: LocalPipelineExecutor(  # noqa: E731
        pipeline=pipeline, tasks=tasks, workers=min(tasks, a.tasks), logging_dir=os.path.join(logs, name), skip_completed=False,
        # fork: the workers are this process's children, so their CPU time is counted (forkserver's are not)
        start_method="fork",
    ).run()
    cpu = lambda: sum(resource.getrusage(w).ru_utime + resource.getrusage(w).ru_stime for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))  # noqa: E731
    t0, c0 = time.perf_counter(), cpu()
    if not a.minhash:
        run("clean", [reader(a.input), *clean, JsonlWriter(out, compression="zstd", output_filename="${rank}.jsonl.zst")], a.tasks)
    else:
        from datatrove.pipeline.dedup import MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature
        from datatrove.pipeline.dedup.minhash import MinhashConfig

        cfg = MinhashConfig(n_grams=5, num_buckets=25, hashes_per_bucket=10)
        mid, sigs, buckets, clusters = (os.path.join(a.output, d) for d in ("mid", "sigs", "buckets", "clusters"))
        run("1-sigs", [reader(a.input), *clean, JsonlWriter(mid, compression="zstd", output_filename="${rank}.jsonl.zst"), MinhashDedupSignature(sigs, config=cfg, language=code_word_tokenizer())], a.tasks)
        run("2-buckets", [MinhashDedupBuckets(sigs, buckets, config=cfg)], cfg.num_buckets)
        run("3-clusters", [MinhashDedupCluster(buckets, clusters, config=cfg)], 1)
        run("4-filter", [JsonlReader(mid), MinhashDedupFilter(clusters), JsonlWriter(out, compression="zstd", output_filename="${rank}.jsonl.zst")], a.tasks)
    seconds, cpu_seconds = time.perf_counter() - t0, cpu() - c0
    print(json.dumps({"seconds": seconds, "cpuSeconds": cpu_seconds, "documentsOut": count_docs(out)}))


if __name__ == "__main__":
    main()
