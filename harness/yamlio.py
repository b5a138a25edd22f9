"""Reading users' YAML files with one-line errors (prune configs, sweep configs, dataset YAMLs).

YAML aliases let a few hundred bytes describe a document of billions of nodes ("billion laughs"): PyYAML builds it
with shared objects, and the first `str()` or copy of it expands it in memory. The loader here counts the nodes the
document expands to before constructing any Python object, and refuses documents past `MAX_NODES` or with an
alias cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from harness.errors import UserError
from harness.userfiles import read_text

# Far above any prune or sweep config (a ResNet-110 prune config is ~ 700 nodes), far below what hurts.
MAX_NODES = 100_000
MAX_FLOW_DEPTH = 200  # nested [ ] / { }: PyYAML scans a whole flow collection before composing it, recursively


class _Refused(yaml.YAMLError):
    """The document is refused as a whole (too large once aliases are expanded, or an alias cycle)."""


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def expanded_size(root: yaml.Node, limit: int = MAX_NODES) -> int:
    """How many nodes `root` has with every alias expanded; _Refused past `limit` or on a cycle.

    Each distinct node is visited once (sizes are memoised by identity), iteratively: linear in the file, no matter
    how deep it nests or how many times it is aliased.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # nodes whose subtree is being sized: their ancestors' alias to them is a cycle
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in _children(node))
            if sizes[key] > limit:
                raise _Refused(f"it expands to more than {limit} nodes through aliases (an alias bomb?)")
            continue
        if key in sizes:
            continue
        open_nodes.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_nodes:
                raise _Refused("an alias refers to a node that contains it (a cycle)")
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


class BoundedLoader(yaml.SafeLoader):
    """yaml.SafeLoader that bounds flow nesting while scanning and sizes the node graph before constructing it."""

    def fetch_flow_collection_start(self, token_class: type) -> None:
        if self.flow_level >= MAX_FLOW_DEPTH:
            raise _Refused(f"it nests [ ] / {{ }} more than {MAX_FLOW_DEPTH} levels deep")
        super().fetch_flow_collection_start(token_class)

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None:
            expanded_size(node)
        return node


def parse_yaml(text: str) -> Any:
    """yaml.safe_load with the alias bound (raises yaml.YAMLError, including for nesting deeper than the stack)."""
    try:
        return yaml.load(text, Loader=BoundedLoader)  # noqa: S506 — a SafeLoader subclass
    except RecursionError:
        raise _Refused("it nests too deeply") from None


def load_yaml(path: str | Path, what: str, error: type[UserError] = UserError, hint: str = "") -> Any:
    """Parse `path`; a missing, unreadable, non-UTF-8 or invalid file is `error` naming `what` it was meant to be."""
    text = read_text(path, what, error, hint)
    tail = f"; {hint}" if hint else ""
    try:
        return parse_yaml(text)
    except _Refused as exc:
        raise error(f"{what} {path} is refused: {exc}{tail}") from None
    except yaml.YAMLError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise error(f"{what} {path} is not valid YAML: {first}{tail}") from None
