"""kiln_trainer.generate on a real export of a tiny kiln model: greedy ids as transformers', seeds, stops, infilling,
streaming, batching, and the CLI's output and its exit 2 on bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from kiln_trainer.export import export_checkpoint
from kiln_trainer.generate import KIND, GenerateError, Generator, Request, _Row, main
from kiln_trainer.model import ModelConfig, Transformer

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

V = 512
PROMPTS = ("import json\n\ndef ", "class Decoder(", "    return self.")


def tiny_model(pe: str, seed: int) -> Transformer:
    """A 2-layer kiln model whose blocks (not the tied embedding) decide the argmax, as test_export's."""
    m = Transformer(ModelConfig(V, 64, 2, 4, 4.0, 64, pe, "fp32"))  # type: ignore[arg-type]
    m.init_weights(seed)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.startswith("layers."):
                p.mul_(6.0)
    return m.eval()


@pytest.fixture(scope="module", params=["rope", "alibi"])
def exported(request: pytest.FixtureRequest, tok512: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An export (`hf/`) of a tiny Llama (rope) or MPT (alibi) model."""
    out = tmp_path_factory.mktemp(f"export-{request.param}") / "hf"
    m = tiny_model(request.param, seed=11)
    export_checkpoint(m, m.cfg, tok512, out)
    return out


@pytest.fixture(scope="module")
def gen(exported: Path) -> Generator:
    return Generator(exported, device="cpu")


@pytest.fixture(scope="module")
def llama_export(tok512: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One export for the CLI's tests (a process each: one architecture is enough)."""
    out = tmp_path_factory.mktemp("export-cli") / "hf"
    m = tiny_model("rope", seed=5)
    export_checkpoint(m, m.cfg, tok512, out)
    return out


def hf_greedy(folder: Path, ids: list[int], n: int, eos: int, pad: int) -> list[int]:
    from transformers import AutoModelForCausalLM

    hf: Any = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
    hf.eval()
    x = torch.tensor([ids])
    with torch.no_grad():
        out = hf.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=n, do_sample=False, eos_token_id=eos,
                          pad_token_id=pad)  # fmt: skip
    new: list[int] = out[0, len(ids) :].tolist()
    return new[: new.index(eos) + 1] if eos in new else new


def test_greedy_generation_gives_transformers_own_ids(gen: Generator, exported: Path) -> None:
    (eos,) = gen.eos_ids
    for prompt in PROMPTS:
        c = gen.generate(prompt, max_new_tokens=12)
        theirs = hf_greedy(exported, gen.prompt_ids(prompt), 12, eos, gen.pad_id)
        assert list(c.token_ids) == theirs
        assert c.completion_tokens == len(theirs) and c.prompt_tokens == len(gen.prompt_ids(prompt))
        assert c.finish_reason == ("eos" if eos in theirs else "length")
        assert c.text == gen.tokenizer.decode([t for t in theirs if t != eos])


def test_a_left_padded_batch_gives_each_prompt_its_own_completion(gen: Generator) -> None:
    reqs = [Request(p, max_new_tokens=10) for p in PROMPTS]
    assert len({len(gen.prompt_ids(p)) for p in PROMPTS}) > 1  # the batch really is padded
    alone = [gen.generate_batch([r])[0] for r in reqs]
    together = gen.generate_batch(reqs)
    assert [c.token_ids for c in together] == [c.token_ids for c in alone]
    sampled = [Request(p, max_new_tokens=10, temperature=1.5, seed=i) for i, p in enumerate(PROMPTS)]
    assert gen.generate_batch(sampled) == [gen.generate_batch([r])[0] for r in sampled]


def test_seeded_sampling_is_reproducible_and_seeds_differ(gen: Generator) -> None:
    a = gen.generate(PROMPTS[0], max_new_tokens=16, temperature=1.5, seed=3)
    b = gen.generate(PROMPTS[0], max_new_tokens=16, temperature=1.5, seed=3)
    assert a == b
    others = {gen.generate(PROMPTS[0], max_new_tokens=16, temperature=1.5, seed=s).token_ids for s in (4, 5, 6)}
    assert others - {a.token_ids}
    greedy = gen.generate(PROMPTS[0], max_new_tokens=16)
    assert gen.generate(PROMPTS[0], max_new_tokens=16, temperature=1.5, top_k=1, seed=9) == greedy
    # top_p small enough keeps only the most likely token: greedy again.
    assert gen.generate(PROMPTS[0], max_new_tokens=16, temperature=1.0, top_p=1e-6, seed=9).token_ids == (
        greedy.token_ids
    )


def _token_boundary(gen: Generator, full_text: str, ids: tuple[int, ...]) -> int | None:
    """A character offset of `full_text` where one token ends and the next begins, with whole characters on both
    sides (a random model's byte-level tokens are often half a UTF-8 character); None if the completion has none."""
    for i in range(1, len(ids) - 1):
        before, after = gen.tokenizer.decode(list(ids[:i])), gen.tokenizer.decode(list(ids[: i + 1]))
        n = len(before)
        pair = full_text[n - 1 : n + 1]
        if (
            0 < n < len(after)
            and full_text.startswith(before)
            and full_text.startswith(after)
            and "\ufffd" not in pair
            and full_text.find(pair) == n - 1
        ):
            return n
    return None


def test_a_stop_sequence_across_tokens_cuts_the_text(gen: Generator) -> None:
    found = [(p, full, b) for p in PROMPTS for full in [gen.generate(p, max_new_tokens=16)]
             if full.finish_reason == "length" and (b := _token_boundary(gen, full.text, full.token_ids))]  # fmt: skip
    assert found, "no prompt gave a completion with a boundary between two whole-character tokens"
    prompt, full, boundary = found[0]
    # The last character of one token and the first of the next: no single token holds the stop sequence.
    stop = full.text[boundary - 1 : boundary + 1]
    c = gen.generate(prompt, max_new_tokens=16, stop=["NEVER-THERE", stop])
    assert c.finish_reason == "stop"
    assert c.text == full.text[: full.text.find(stop)]
    assert stop not in c.text
    streamed = gen.stream(prompt, max_new_tokens=16, stop=[stop])
    assert "".join(streamed) == c.text
    assert streamed.completion is not None and streamed.completion.finish_reason == "stop"


def test_streaming_pieces_concatenate_to_the_full_text(gen: Generator) -> None:
    full = gen.generate(PROMPTS[2], max_new_tokens=16, temperature=1.2, seed=1)
    stream = gen.stream(PROMPTS[2], max_new_tokens=16, temperature=1.2, seed=1)
    pieces = list(stream)
    assert len(pieces) > 1
    assert "".join(pieces) == full.text
    assert stream.completion == full


def test_incremental_decoding_holds_back_half_characters(gen: Generator) -> None:
    text = "caf\u00e9 \u20ac \u2713 \u00fcber \U0001f600"
    ids = gen.tokenizer.encode(text).ids
    assert any("\ufffd" in gen.tokenizer.decode([i]) for i in ids), "the test needs a character split over tokens"
    row = _Row(gen, Request(""), [])
    seen = []
    for i in ids:
        row.push(i)
        seen.append(row.take())
    row.flush()
    seen.append(row.take())
    assert "".join(seen) == text
    assert not any("\ufffd" in s for s in seen)


def test_infilling_builds_the_psm_prompt_from_the_sentinels(gen: Generator) -> None:
    tok = gen.tokenizer
    pre, suf, mid = (tok.token_to_id(t) for t in ("<fim_prefix>", "<fim_suffix>", "<fim_middle>"))
    ids = gen.prompt_ids("def add(a, b):\n    return ", "\n\nprint(add(1, 2))\n")
    enc = [
        tok.encode(t, add_special_tokens=False).ids for t in ("def add(a, b):\n    return ", "\n\nprint(add(1, 2))\n")
    ]
    assert ids == [pre, *enc[0], suf, *enc[1], mid]
    c = gen.generate("def add(a, b):\n    return ", suffix="\n", max_new_tokens=6)
    assert c.prompt_tokens == len(gen.prompt_ids("def add(a, b):\n    return ", "\n"))
    # The end-of-text role ends an infill: make the model's first choice end of text.
    first = c.token_ids[0]
    saved = gen.eos_ids
    try:
        gen.eos_ids = frozenset({first})
        ended = gen.generate("def add(a, b):\n    return ", suffix="\n", max_new_tokens=6)
    finally:
        gen.eos_ids = saved
    assert ended.finish_reason == "eos" and ended.text == "" and ended.token_ids == (first,)


def test_infilling_without_fim_sentinels_is_a_clear_error(exported: Path, tmp_path: Path) -> None:
    folder = tmp_path / "hf"
    shutil.copytree(exported, folder)
    roles = json.loads((folder / "kiln-tokenizer.json").read_text())
    (folder / "kiln-tokenizer.json").write_text(json.dumps({**roles, "fim": None}))
    g = Generator(folder, device="cpu")
    assert g.generate("x = ", max_new_tokens=2).completion_tokens == 2
    with pytest.raises(GenerateError, match="needs FIM sentinels"):
        g.generate("x = ", suffix="\n")


def test_bad_parameters_are_generate_errors(gen: Generator) -> None:
    for bad in ({"max_new_tokens": -1}, {"temperature": -0.5}, {"top_p": 0.0}, {"top_p": 1.5}, {"seed": -1}):
        with pytest.raises(GenerateError):
            gen.generate("x", **bad)
    with pytest.raises(GenerateError, match="context is 64"):
        gen.generate("x " * 200)
    assert gen.generate("x", max_new_tokens=0).finish_reason == "length"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "kiln_trainer.generate", *args], capture_output=True, text=True,
                          env=env, timeout=120)  # fmt: skip


def test_the_cli_prints_one_json_object_and_streams_plain_text(llama_export: Path) -> None:
    exported = llama_export
    expected = Generator(exported, device="cpu").generate(PROMPTS[0], max_new_tokens=5, stop=["\n\n\n"])
    out = run_cli("--model", str(exported), "--prompt", PROMPTS[0], "--max-new-tokens", "5", "--stop", "\n\n\n",
                  "--device", "cpu", "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert set(doc) == {"kind", "model", "prompt", "suffix", "text", "finish_reason", "usage", "seconds",
                        "tokens_per_s"}  # fmt: skip
    assert doc["kind"] == KIND and doc["model"] == str(exported) and doc["suffix"] is None
    assert doc["text"] == expected.text and doc["finish_reason"] == expected.finish_reason
    assert doc["usage"] == {"prompt_tokens": expected.prompt_tokens, "completion_tokens": expected.completion_tokens}
    assert doc["seconds"] > 0
    plain = run_cli("--model", str(exported), "--prompt", PROMPTS[0], "--max-new-tokens", "5")
    assert plain.returncode == 0 and plain.stdout == expected.text


def test_bad_input_is_one_line_and_exit_2(
    llama_export: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exported = llama_export
    (tmp_path / "empty").mkdir()
    cases = [
        ["--model", str(tmp_path / "missing"), "--prompt", "x"],
        ["--model", str(tmp_path / "empty"), "--prompt", "x"],
        ["--model", str(exported), "--prompt", "x", "--max-new-tokens", "-1"],
        ["--model", str(exported), "--prompt", "x", "--temperature", "-1"],
        ["--model", str(exported), "--prompt", "x", "--top-p", "0"],
        ["--model", str(exported), "--prompt", "x", "--top-p", "1.5"],
        ["--model", str(exported), "--prompt", "x", "--max-new-tokens", "many"],
        ["--model", str(exported)],
    ]
    for argv in cases:
        with pytest.raises(SystemExit) as exit_info:
            sys.exit(main(argv))
        err = capsys.readouterr().err
        assert exit_info.value.code == 2, argv
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (argv, err)
    # Weights that are not safetensors: one line too, not the loader's traceback.
    corrupt = tmp_path / "corrupt"
    shutil.copytree(exported, corrupt)
    (corrupt / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(SystemExit) as exit_info:
        sys.exit(main(["--model", str(corrupt), "--prompt", "x"]))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "cannot load the model" in err and len(err.strip().splitlines()) == 1
    out = run_cli("--model", str(tmp_path / "empty"), "--prompt", "x")
    assert out.returncode == 2 and "not an exported model folder" in out.stderr and "Traceback" not in out.stderr
