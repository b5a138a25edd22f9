"""prunebench harness: the shared pruning engine, evaluators, runner, results store and CLI."""

__version__ = "0.1.0"
