"""The one error type for bad program text or a malformed program."""

from __future__ import annotations


class ProgramError(ValueError):
    """A program is not in the language; the message names where and what.

    ``line`` and ``column`` are 1-based and ``None`` when the program was built
    in code rather than parsed; ``source`` is the file name when there is one.
    """

    def __init__(self, message: str, line: int | None = None,
                 column: int | None = None, source: str | None = None):
        self.reason = message
        self.line = line
        self.column = column
        self.source = source
        where = []
        if source:
            where.append(str(source))
        if line is not None:
            where.append(f"line {line}" + (f", column {column}" if column is not None else ""))
        super().__init__(f"{', '.join(where)}: {message}" if where else message)

    def located(self, source: str | None) -> "ProgramError":
        """The same error, naming the file it came from."""
        return ProgramError(self.reason, self.line, self.column, source)
