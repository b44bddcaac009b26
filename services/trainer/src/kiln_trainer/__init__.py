"""kiln's trainer: the tokenizer, pack and train stages.

This slice holds the stage contract (`kiln_trainer.stage`), the corpus reader (`corpus`), the tokenizer roles
(`special`) and the pack stage (`pack`, with its output format and reader in `packed`, and `fim`, `ul2`); see
docs/pack.md.
"""

__version__ = "0.1.0"
