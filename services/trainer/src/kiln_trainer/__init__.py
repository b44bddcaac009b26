"""kiln's trainer: the tokenizer, pack and train stages.

The stage contract (`kiln_trainer.stage`), the corpus reader (`corpus`), the roles of special tokens (`special`),
the tokenizer stage (`tokenizer`, docs/tokenizer.md), the pack stage (`pack`, its objectives `fim` and `ul2`, its
tokenizer helpers `packtok`, and its output format and reader `packed`; docs/pack.md) and where the trainer
computes (`device`).
"""

__version__ = "0.1.0"
