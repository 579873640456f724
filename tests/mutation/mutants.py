"""Mutants of one Python source file: small AST-level changes, each applied as a text edit.

Every mutant replaces the exact source span of one node, so the rest of the file (comments,
formatting, line numbers) stays as it was and a mutant reads as a one-line diff. Expressions are
replaced in parentheses, statements by `pass`, so every mutant is valid Python.

Not mutated: docstrings, type annotations, f-strings, string constants, logging calls and `if`
statements that only log (what they change is only a log line).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass

# Comparison flips: the boundary (< vs <=) and the negation (< vs >=) of each operator.
COMPARE: dict[type[ast.cmpop], tuple[type[ast.cmpop], ...]] = {
    ast.Lt: (ast.LtE, ast.GtE),
    ast.LtE: (ast.Lt, ast.Gt),
    ast.Gt: (ast.GtE, ast.LtE),
    ast.GtE: (ast.Gt, ast.Lt),
    ast.Eq: (ast.NotEq,),
    ast.NotEq: (ast.Eq,),
    ast.In: (ast.NotIn,),
    ast.NotIn: (ast.In,),
    ast.Is: (ast.IsNot,),
    ast.IsNot: (ast.Is,),
}
ARITHMETIC: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Pow: ast.Mult,
    ast.Mod: ast.FloorDiv,
}
SWAPPED_CALLS = {"min": "max", "max": "min", "any": "all", "all": "any"}
LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical"}
REMOVABLE = (ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Raise, ast.If, ast.Continue, ast.Break)


@dataclass(frozen=True)
class Mutant:
    line: int
    column: int
    operator: str  # cmp, arith, const, bool, not, return, remove, call, true-false
    before: str  # the original source of the mutated node (first line if it spans several)
    after: str
    start: int  # byte offsets of the replaced span in the source
    end: int
    replacement: str

    @property
    def where(self) -> str:
        return f"{self.line}:{self.column}"

    @property
    def label(self) -> str:
        return f"{self.before} -> {self.after}"

    def apply(self, source: bytes) -> bytes:
        return source[: self.start] + self.replacement.encode() + source[self.end :]


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] + (" ..." if len(lines) > 1 else "") if lines else text


class _Finder(ast.NodeVisitor):
    def __init__(self, source: bytes) -> None:
        self.source = source
        self.line_starts = [0]
        for i, byte in enumerate(source):
            if byte == ord("\n"):
                self.line_starts.append(i + 1)
        self.found: list[Mutant] = []

    def span(self, node: ast.AST) -> tuple[int, int]:
        start = self.line_starts[node.lineno - 1] + node.col_offset  # type: ignore[attr-defined]
        assert node.end_lineno is not None and node.end_col_offset is not None  # type: ignore[attr-defined]
        end = self.line_starts[node.end_lineno - 1] + node.end_col_offset  # type: ignore[attr-defined]
        return start, end

    def add(self, node: ast.AST, operator: str, new: ast.AST | str, statement: bool = False) -> None:
        start, end = self.span(node)
        before = self.source[start:end].decode()
        text = new if isinstance(new, str) else ast.unparse(new)
        replacement = text if statement else f"({text})"
        self.found.append(
            Mutant(
                node.lineno,  # type: ignore[attr-defined]
                node.col_offset,  # type: ignore[attr-defined]
                operator,
                _first_line(before),
                _first_line(text),
                start,
                end,
                replacement,
            )
        )

    # Parts of the file that are not behaviour.
    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        return

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:  # a bare `name: type` (a dataclass field) does nothing to remove
            self._statement(node)
            self.visit(node.value)

    def visit_arg(self, node: ast.arg) -> None:
        return

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for default in (*node.args.defaults, *node.args.kw_defaults):
            if default is not None:
                self.visit(default)
        self._body(node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._body(node.body)

    def visit_Module(self, node: ast.Module) -> None:
        self._body(node.body)

    def _body(self, body: list[ast.stmt]) -> None:
        for i, statement in enumerate(body):
            docstring = (
                i == 0 and isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
            )
            if not docstring:
                self.visit(statement)

    def visit_Expr(self, node: ast.Expr) -> None:
        if not _is_log_call(node.value):
            self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if _is_log_call(node):
            return
        func = node.func
        if isinstance(func, ast.Name) and func.id in SWAPPED_CALLS:
            swapped = ast.Call(ast.Name(SWAPPED_CALLS[func.id]), node.args, node.keywords)
            self.add(node, "call", swapped)
        self.generic_visit(node)

    # Operators.
    def visit_Compare(self, node: ast.Compare) -> None:
        for i, op in enumerate(node.ops):
            for other in COMPARE.get(type(op), ()):
                ops = [*node.ops[:i], other(), *node.ops[i + 1 :]]
                self.add(node, "cmp", ast.Compare(node.left, ops, node.comparators))
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        other = ARITHMETIC.get(type(node.op))
        if other is not None:
            self.add(node, "arith", ast.BinOp(node.left, other(), node.right))
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        other = ARITHMETIC.get(type(node.op))
        if other is not None:
            self.add(node, "arith", ast.AugAssign(node.target, other(), node.value), statement=True)
        self._statement(node)
        self.visit(node.value)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        self.add(
            node, "bool", ast.BoolOp(ast.Or() if isinstance(node.op, ast.And) else ast.And(), node.values)
        )
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, ast.Not):
            self.add(node, "not", node.operand)
        if isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
            return  # a negative literal: mutated as a whole would duplicate the constant mutants
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, bool):
            self.add(node, "true-false", ast.Constant(not value))
        elif isinstance(value, int | float):
            self.add(node, "const", ast.Constant(value + 1))
            self.add(node, "const", ast.Constant(value - 1))

    def visit_Return(self, node: ast.Return) -> None:
        if node.value is not None and not (isinstance(node.value, ast.Constant) and node.value.value is None):
            self.add(node, "return", "return None", statement=True)
            self.visit(node.value)

    def visit_If(self, node: ast.If) -> None:
        if not node.orelse and all(isinstance(s, ast.Expr) and _is_log_call(s.value) for s in node.body):
            return  # its condition only decides whether to log
        self.generic_visit(node)

    def generic_visit(self, node: ast.AST) -> None:
        if isinstance(node, REMOVABLE):
            self._statement(node)
        super().generic_visit(node)

    def _statement(self, node: ast.stmt) -> None:
        self.add(node, "remove", "pass", statement=True)


def _is_log_call(node: ast.expr) -> bool:
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
        return False
    owner = node.func.value
    return node.func.attr in LOG_METHODS and isinstance(owner, ast.Name) and owner.id in ("log", "logging")


def find(source: bytes) -> list[Mutant]:
    finder = _Finder(source)
    finder.visit(ast.parse(source))
    return sorted(finder.found, key=lambda m: (m.start, m.operator, m.after))


def valid(mutants: list[Mutant], source: bytes) -> Iterator[Mutant]:
    """The mutants that compile (all of them, unless an operator met a construct it does not know)."""
    for mutant in mutants:
        try:
            compile(mutant.apply(source), "<mutant>", "exec")
        except SyntaxError:
            continue
        yield mutant
