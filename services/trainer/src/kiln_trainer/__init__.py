"""kiln's trainer: the tokenizer, pack and train stages. This slice holds the stage contract (`kiln_trainer.stage`)."""

__version__ = "0.1.0"
