"""kiln's trainer: the tokenizer, pack and train stages.

The stage contract (`kiln_trainer.stage`), the corpus reader (`corpus`), the roles of special tokens (`special`) and
the tokenizer stage (`tokenizer`, docs/tokenizer.md).
"""

__version__ = "0.1.0"
