"""MinHash signatures in Python, for bench/data-prep-minhash.ts: datasketch's MinHash (256 permutations over
BigCode's shingles: 5-grams of `[A-Za-z_0-9]+` tokens, as kiln) and datatrove's MinhashDedupSignature (its own
text normalisation, kiln's word tokens (see code_word_tokenizer), 5-grams, 25 buckets x 10 hashes = 250 hashes, as kiln's (0.7, 256)
setting), over the same files.

    python minhash_peers.py --files LIST [--peer datasketch|datatrove]...

LIST: a file of paths, one a line. Prints one JSON line per peer: CPU seconds (this process) of the signing pass,
after a warm-up over the first 200 files, and how many files were signed.
"""

import argparse
import json
import re
import tempfile
import time

TOKEN = re.compile(r"[A-Za-z_0-9]+")


def code_word_tokenizer():
    """A datatrove WordTokenizer with kiln's token rule, `[A-Za-z_0-9]+`. datatrove's English default is NLTK's,
    which loads punkt data from the internet on first use (this machine has none); for code, word tokens are the
    BigCode shingles' tokens anyway."""
    from datatrove.utils.word_tokenizers import WordTokenizer

    class CodeTokenizer(WordTokenizer):
        def word_tokenize(self, text):
            return TOKEN.findall(text)

        def sent_tokenize(self, text):
            return text.split("\n")

        def span_tokenize(self, text):
            return [m.span() for m in TOKEN.finditer(text)]

    return CodeTokenizer("code")


def datasketch_pass(texts):
    from datasketch import MinHash

    signed = 0
    for text in texts:
        tokens = TOKEN.findall(text)
        if len(tokens) < 5:
            continue
        m = MinHash(num_perm=256, seed=42)
        m.update_batch([" ".join(tokens[i : i + 5]).encode("utf8") for i in range(len(tokens) - 4)])
        signed += 1
    return signed


def datatrove_pass(texts, step):
    signed = 0
    for text in texts:
        shingles = step.get_shingles(text)
        if shingles.size:
            step.get_signature(shingles)
            signed += 1
    return signed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", required=True)
    ap.add_argument("--peer", action="append", choices=["datasketch", "datatrove"])
    a = ap.parse_args()
    with open(a.files, encoding="utf8") as f:
        paths = [p for p in f.read().split("\n") if p]
    texts = []
    for p in paths:
        with open(p, encoding="utf8", errors="replace") as f:
            texts.append(f.read())
    for peer in a.peer or ["datasketch", "datatrove"]:
        if peer == "datasketch":
            run = datasketch_pass
        else:
            from datatrove.pipeline.dedup import MinhashDedupSignature
            from datatrove.pipeline.dedup.minhash import MinhashConfig

            step = MinhashDedupSignature(tempfile.mkdtemp(), config=MinhashConfig(n_grams=5, num_buckets=25, hashes_per_bucket=10), language=code_word_tokenizer())
            run = lambda ts, step=step: datatrove_pass(ts, step)  # noqa: E731
        run(texts[:200])
        c0 = time.process_time()
        signed = run(texts)
        print(json.dumps({"peer": peer, "cpuSeconds": time.process_time() - c0, "signed": signed}), flush=True)


if __name__ == "__main__":
    main()
