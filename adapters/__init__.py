"""Per-task adapters: each module wraps real models and data behind the `harness.tasks.Task` contract."""
