"""torchrun that keeps the train stage's exit codes: `python -m kiln_trainer.launch [torchrun's arguments]`.

torchrun exits 1 whenever a worker exits non-zero, so the stage's terminal 2 (the Job fails at once) and
retryable 3 (a checkpoint was saved on SIGTERM) are lost. This runs torchrun (`torch.distributed.run`) with the
same arguments and `KILN_TRAIN_EXIT_DIR` set; each worker of kiln_trainer.train writes its exit code there; then
this exits 2 if any worker said 2, else 3 if any said 3, else torchrun's own code. SIGTERM and SIGINT are passed
to torchrun (which passes them to its workers).

    python -m kiln_trainer.launch --nnodes=1 --nproc-per-node=2 -m kiln_trainer.train --config FILE
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from .stage import TERMINAL_EXIT

__all__ = ["EXIT_DIR_ENV", "RETRYABLE_EXIT", "main", "record_exit", "worst"]

EXIT_DIR_ENV = "KILN_TRAIN_EXIT_DIR"
"""Where each worker writes `rank-R` holding its exit code."""

RETRYABLE_EXIT = 3
"""Stopped by SIGTERM/SIGINT with a checkpoint saved: not 0 (not done), not 2 (not terminal), so the Job retries."""


def record_exit(code: int) -> None:
    """A worker's exit code, for the launcher (a no-op outside it)."""
    folder = os.environ.get(EXIT_DIR_ENV)
    if folder:
        rank = os.environ.get("RANK", "0")
        Path(folder, f"rank-{rank}").write_text(str(code), encoding="utf-8")


def worst(codes: Sequence[int], launcher: int) -> int:
    """The exit code for the pod: 2 over 3 over torchrun's own."""
    if TERMINAL_EXIT in codes:
        return TERMINAL_EXIT
    if RETRYABLE_EXIT in codes:
        return RETRYABLE_EXIT
    return launcher


def main(argv: Sequence[str] | None = None) -> int:
    """Runs torchrun with `argv`; its exit code, or the workers' 2 or 3."""
    args = list(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="kiln-exit-") as folder:
        env = {**os.environ, EXIT_DIR_ENV: folder}
        proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", *args], env=env)

        def forward(signum: int, frame: FrameType | None) -> None:
            proc.send_signal(signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        code = proc.wait()
        codes = [int(p.read_text(encoding="utf-8") or "1") for p in Path(folder).glob("rank-*")]
    return worst(codes, code)


if __name__ == "__main__":
    sys.exit(main())
