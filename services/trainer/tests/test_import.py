"""The trainer imports and runs on a machine with no GPU and without torch."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def test_given_no_gpu_and_no_torch_when_the_package_is_imported_then_it_works() -> None:
    # A meta-path finder that refuses torch (and anything CUDA) makes "no torch" true even once torch is installed.
    program = textwrap.dedent(
        """
        import sys

        class NoTorch:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "triton", "nvidia"):
                    raise ImportError(f"{name} is blocked by the test")
                return None

        sys.meta_path.insert(0, NoTorch())
        import kiln_trainer
        import kiln_trainer.stage as stage
        import kiln_trainer.tokenizer, kiln_trainer.pack, kiln_trainer.packed, kiln_trainer.device

        assert stage.TERMINAL_EXIT == 2
        print(stage.fit_summary({"metrics": {"ok": 1}}))
        """
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}

    out = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True)

    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '{"metrics":{"ok":1}}'


def test_given_the_package_when_imported_then_torch_is_not_loaded() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, kiln_trainer.stage, kiln_trainer.tokenizer, kiln_trainer.pack; print('torch' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )

    assert out.stdout.strip() == "False"
