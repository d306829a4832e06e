"""A result made of numerical checks of stated equations (what the theory analyses return): each
check compares two sides of a statement as the paper writes it, or as it holds, and records the
largest deviation. Markdown, JSON and a bar chart come from here, so every such analysis reports
the same way."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .identities import IdentityCheck

__all__ = ["IdentityCheck", "ChecksResult", "check"]


def check(name: str, statement: str, deviation: float, scale: float, tol: float, note: str = "") -> IdentityCheck:
    """A check that holds when ``deviation <= tol * max(scale, 1)``."""
    return IdentityCheck(name, statement, float(deviation), float(scale), bool(deviation <= tol * max(scale, 1.0)), note)


@dataclass
class ChecksResult:
    title: str
    intro: str
    checks: list = field(default_factory=list)       # IdentityCheck
    sections: list = field(default_factory=list)     # (heading, markdown text)
    data: dict = field(default_factory=dict)         # numbers for the figure and the JSON

    def to_dict(self) -> dict:
        return {"title": self.title, "checks": [asdict(c) for c in self.checks], "sections": self.sections,
                "data": self.data}

    def to_markdown(self) -> str:
        L = [f"# {self.title}", "", self.intro, "",
             "| check | statement | largest deviation | term scale | holds |", "| --- | --- | --- | --- | --- |"]
        for c in self.checks:
            cell = c.statement.replace("||", "‖").replace("|", "\\|")  # a bare | would split the table cell
            L.append(f"| {c.name} | {cell} | {c.deviation:.2e} | {c.scale:.2e} | {'yes' if c.holds else 'NO'} |")
        for heading, text in self.sections:
            L += ["", f"## {heading}", "", text]
        notes = [f"- {c.name}: {c.note}" for c in self.checks if c.note]
        if notes:
            L += ["", "## Notes", ""] + notes
        return "\n".join(L) + "\n"
