"""The root of orchd's exception tree, ``OrchdError``, and the walk over the tree (base layer).

Each class's docstring is its one-line user message, a ``str.format`` template filled from the
keyword arguments it is raised with; ``hint`` (also a template) tells the operator what to do next.
"""

from __future__ import annotations

from typing import Any, ClassVar


class OrchdError(Exception):
    """orchd failed: {detail}"""

    exit_code: ClassVar[int] = 1
    hint: ClassVar[str | None] = None

    def __init__(self, **fields: Any) -> None:
        self.fields = fields
        super().__init__(self.message)

    @property
    def message(self) -> str:
        template = (self.__doc__ or type(self).__name__).strip().splitlines()[0]
        return template.format(**self.fields)

    @property
    def kind(self) -> str:
        """The error's name, as docs/EXIT_CODES.md lists it (``--json`` errors carry it)."""
        return type(self).__name__

    def to_json(self) -> dict[str, Any]:
        """The error as a daemon replies it and ``--json`` prints it: its message, its exit
        code, its hint (or None) and its kind."""
        return {
            "error": self.message,
            "code": self.exit_code,
            "hint": self.hint_text,
            "kind": self.kind,
        }

    @property
    def hint_text(self) -> str | None:
        return None if self.hint is None else self.hint.format(**self.fields)


def all_error_classes() -> list[type[OrchdError]]:
    """Every class of the tree, depth first, in definition order."""
    found: list[type[OrchdError]] = []

    def walk(cls: type[OrchdError]) -> None:
        found.append(cls)
        for sub in cls.__subclasses__():
            walk(sub)

    walk(OrchdError)
    return found
