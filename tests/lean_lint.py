"""A static check of the Lean sources for mistakes that are known to break the build or the editor.

No Lean toolchain can be had where most of this project is developed, so the Lean package is
written against Lean's source and checked here by plain text patterns, each one a mistake that was
made once or that ``../shared/lean-notes.md`` records as breaking on the pinned toolchain. It is
no compiler: it catches what it names, nothing more. Comments and string literals are blanked
before matching, so prose may mention what code may not use.

Used by ``tests/test_lean_static.py``; ``python tests/lean_lint.py FILE...`` prints the findings.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "PRELUDE_TYPES",
    "Finding",
    "blank_comments_and_strings",
    "core_names",
    "lint_file",
    "lint_package",
    "lint_source",
]


@dataclass(frozen=True)
class Finding:
    """One problem: where, which rule, and what to do instead."""

    path: str
    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: [{self.rule}] {self.message}"


#: APIs that are deprecated, removed or ignored on the pinned toolchain (lean-notes §0, §2, §4), or
#: that block the editor (§0.6, §0b.3): a pattern and the advice.
FORBIDDEN: tuple[tuple[str, re.Pattern[str], str], ...] = (
    (
        "blocking-process",
        re.compile(r"\bIO\.Process\.(?:output|run)\b"),
        "IO.Process.output/run ignore cancellation and throw on output that is not UTF-8; "
        "spawn with piped stdio and poll tryWait (lean-notes §0.6, §0b.3)",
    ),
    (
        "suggestion-style",
        re.compile(r"\bSuggestionStyle\b|\bstyle\?\s*:="),
        "Suggestion.style?/SuggestionStyle are deprecated and ignored (lean-notes §0.2)",
    ),
    (
        "suggestion-message-data",
        re.compile(r"\bmessageData\?\s*:="),
        "Suggestion.messageData? is deprecated and ignored in the newest source (lean-notes §0.2)",
    ),
    (
        "diff-granularity",
        re.compile(r"\bdiffGranularity\b"),
        "pass addSuggestions only ref, the suggestions, origSpan? and header (lean-notes §0.2)",
    ),
    (
        "string-range",
        re.compile(r"\bString\.Range\b"),
        "String.Range is gone since v4.26; use Syntax.getRange? without naming the type (lean-notes §4.3)",
    ),
    (
        "module-system",
        re.compile(r"^\s*(?:module\b|public\s+import\b)", re.MULTILINE),
        "no module-system headers in this package: plain `import` (lean-notes §4.9)",
    ),
    ("string-mk", re.compile(r"\bString\.mk\b"), "String.mk is deprecated; use String.ofList (lean-notes §4.2)"),
    (
        "string-trim",
        re.compile(r"\bString\.trim\b|\.trim\b"),
        "String.trim is deprecated and trimming now returns String.Slice (lean-notes §4.2)",
    ),
    (
        "substring",
        re.compile(r"\bSubstring\b(?!\.Raw)|\btoSubstring\b"),
        "Substring was renamed Substring.Raw (lean-notes §4.2)",
    ),
    (
        "end-pos",
        re.compile(r"\.endPos\b"),
        "String.endPos changed meaning (now the dependent end position; lean-notes §4.2)",
    ),
    ("lean-hashset", re.compile(r"\bLean\.Hash(?:Set|Map)\b"), "Lean.HashSet/HashMap are deprecated; use Std's"),
    (
        "builtin-option",
        re.compile(r"\bregister_builtin_option\b"),
        "register_builtin_option is for core only; use register_option (lean-notes §2.8)",
    ),
    ("option-group", re.compile(r"\bgroup\s*:="), "OptionDecl has no `group` field any more (lean-notes §2.8)"),
    (
        "old-widget",
        re.compile(r"@\[widget\]|\bsaveWidgetInfo\b"),
        "the old widget API is gone; use @[widget_module] and savePanelWidgetInfo (lean-notes §2.11)",
    ),
)

_DEF = re.compile(
    r"^(?:@\[[^\]]*\]\s*)?(?:(?:private|protected|partial|noncomputable|unsafe)\s+)*"
    r"(?:def|theorem|abbrev)\s+([A-Za-z_][\w']*(?:\.[A-Za-z_][\w'?!]*)+)"
)
_SCOPE_OPEN = re.compile(r"^(namespace|section)\b\s*([\w.']*)")
_SCOPE_END = re.compile(r"^end\b")


def blank_comments_and_strings(source: str) -> str:
    """``source`` with comments and the insides of string literals replaced by spaces; newlines kept."""
    out: list[str] = []
    i, n, depth = 0, len(source), 0
    in_string = False
    while i < n:
        ch, nxt = source[i], source[i + 1] if i + 1 < n else ""
        if depth:
            if ch == "/" and nxt == "-":
                depth, step = depth + 1, 2
            elif ch == "-" and nxt == "/":
                depth, step = depth - 1, 2
            else:
                step = 1
            out.append(re.sub(r"[^\n]", " ", source[i : i + step]))
            i += step
        elif in_string:
            step = 2 if ch == "\\" and nxt else 1
            if ch == '"':
                in_string, step = False, 1
                out.append('"')
            else:
                out.append(re.sub(r"[^\n]", " ", source[i : i + step]))
            i += step
        elif ch == "/" and nxt == "-":
            depth = 1
            out.append("  ")
            i += 2
        elif ch == "-" and nxt == "-":
            end = source.find("\n", i)
            end = n if end == -1 else end
            out.append(" " * (end - i))
            i = end
        elif ch == '"':
            in_string = True
            out.append('"')
            i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _self_shadowing(path: str, lines: list[str]) -> list[Finding]:
    """``def X.f``: a bare ``f`` in its body names the definition itself, not the core ``f`` (lean-notes §0b.1)."""
    found: list[Finding] = []
    for i, line in enumerate(lines):
        m = _DEF.match(line)
        if not m:
            continue
        full = m.group(1)
        short = full.split(".")[-1]
        call = re.compile(r"(?<![\w.'`])" + re.escape(short) + r"(?![\w'?!])\s+[\w(\"#\[⟨{!.-]")
        # The signature line itself may apply `short` only after `:=`.
        candidates = [(i, line.split(":=", 1)[1] if ":=" in line else "")]
        j = i + 1
        while j < len(lines) and (not lines[j].strip() or lines[j][:1].isspace()):
            candidates.append((j, lines[j]))
            j += 1
        for k, text in candidates:
            if call.search(text):
                found.append(
                    Finding(
                        path,
                        k + 1,
                        "self-shadowing",
                        f"inside `def {full}`, a bare `{short}` is the definition itself, not the core "
                        f"`{short}`: qualify it (e.g. `Lean.{short}`) or rename the definition",
                    )
                )
    return found


def _options_in_namespace(path: str, lines: list[str]) -> list[Finding]:
    """``register_option`` inside a namespace: the option and its constant then disagree (lean-notes §0.7)."""
    found: list[Finding] = []
    scopes: list[str] = []
    for i, line in enumerate(lines):
        if m := _SCOPE_OPEN.match(line):
            scopes.append(m.group(1))
        elif _SCOPE_END.match(line) and scopes:
            scopes.pop()
        elif line.lstrip().startswith("register_option") and "namespace" in scopes:
            found.append(
                Finding(
                    path,
                    i + 1,
                    "option-in-namespace",
                    "declare options outside every namespace: register_option names the option as "
                    "written, but its constant gets the namespace prefix",
                )
            )
    return found


def lint_source(path: str, source: str) -> list[Finding]:
    """Every finding in one Lean file's text, in line order."""
    code = blank_comments_and_strings(source)
    lines = code.splitlines()
    found = _self_shadowing(path, lines) + _options_in_namespace(path, lines)
    for rule, pattern, advice in FORBIDDEN:
        for m in pattern.finditer(code):
            found.append(Finding(path, code.count("\n", 0, m.start()) + 1, rule, advice))
    return sorted(found, key=lambda f: (f.line, f.rule))


#: Basic types of Lean's prelude, used bare everywhere; they need no entry in the evidence table.
PRELUDE_TYPES = frozenset(
    {
        "Array",
        "Bool",
        "Char",
        "Except",
        "Float",
        "IO",
        "Id",
        "List",
        "Nat",
        "Option",
        "String",
        "Type",
        "UInt32",
        "UInt8",
        "Unit",
    }
)

_CAPITALISED = re.compile(r"(?<![\w.'`$%])([A-Z][\w']*(?:\.[A-Za-z_][\w'?!]*)*)")
_IMPORT_OR_OPEN = re.compile(r"^(?:import|open)\b.*$", re.MULTILINE)
_OWN_TYPE = re.compile(r"^(?:(?:private|protected)\s+)?(?:structure|inductive|class)\s+([A-Z][\w']*)", re.MULTILINE)


def core_names(sources: list[str]) -> set[str]:
    """The capitalised names (``IO.Process.spawn``, ``TacticM``) that these Lean files use from Lean
    itself, as written: everything capitalised but the files' own types and namespace, and the
    prelude's basic types."""
    # `import` and `open` lines name modules and namespaces, not the APIs used.
    codes = [_IMPORT_OR_OPEN.sub("", blank_comments_and_strings(s)) for s in sources]
    own = {"LLMstep"} | {m.group(1) for code in codes for m in _OWN_TYPE.finditer(code)}
    names = {m.group(1) for code in codes for m in _CAPITALISED.finditer(code)}
    return {n for n in names if n.split(".")[0] not in own and n not in PRELUDE_TYPES}


def lint_file(path: Path) -> list[Finding]:
    """Every finding in the Lean file at ``path``."""
    return lint_source(str(path), path.read_text(encoding="utf-8"))


_PUBLIC_DECL = re.compile(
    r"^(?:@\[[^\]]*\]\s*)?(?:(?:protected|partial|noncomputable|unsafe)\s+)*"
    r"(?:def|abbrev|theorem|structure|inductive|class)\s+([A-Za-z_][\w'?!]*)",
    re.MULTILINE,
)
_OPTION_DECL = re.compile(r"^register_option\s+(llmstep\.[\w]+)", re.MULTILINE)
_IMPORT = re.compile(r"^import\s+(\S+)", re.MULTILINE)
_REFERENCE = re.compile(r"(?<![\w.'`])([A-Za-z_][\w'?!]*(?:\.[A-Za-z_][\w'?!]*)?)")


def lint_package(root: Path, package: str = "LLMstep") -> list[Finding]:
    """Names a module of the package uses from another of its modules that it does not import, even
    through others: Lean then reports them unknown and the whole package fails to build.

    Declarations are read at the top level (``def``, ``structure``, ``inductive``, ... and
    ``register_option``; ``private`` ones are never visible elsewhere), references as identifiers;
    a dotted reference counts by its first part (``Request.body`` uses ``Request``), an option by
    its whole name (``llmstep.url``).
    """
    files = {f"{package}.{p.stem}": p for p in sorted((root / package).glob("*.lean"))}
    codes = {name: blank_comments_and_strings(p.read_text(encoding="utf-8")) for name, p in files.items()}
    imports = {name: set(_IMPORT.findall(code)) for name, code in codes.items()}
    declared: dict[str, str] = {}
    for name, code in codes.items():
        for decl in [*_PUBLIC_DECL.findall(code), *_OPTION_DECL.findall(code)]:
            declared.setdefault(decl.split(".")[0] if not decl.startswith("llmstep.") else decl, name)

    def closure(module: str) -> set[str]:
        seen: set[str] = set()
        todo = [module]
        while todo:
            for dep in imports.get(todo.pop(), ()):
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return seen

    found: list[Finding] = []
    for name, code in codes.items():
        visible = closure(name) | {name}
        reported: set[str] = set()
        for m in _REFERENCE.finditer(_IMPORT.sub("", code)):
            ref = m.group(1)
            key = ref if ref.startswith("llmstep.") else ref.split(".")[0]
            home = declared.get(key)
            if home is not None and home not in visible and key not in reported:
                reported.add(key)
                line = code.count("\n", 0, m.start()) + 1
                found.append(
                    Finding(
                        str(files[name]),
                        line,
                        "unimported-name",
                        f"`{key}` is declared in {home}, which this module does not import (even through others)",
                    )
                )
    return found


if __name__ == "__main__":
    findings = [f for arg in sys.argv[1:] for f in lint_file(Path(arg))]
    print("\n".join(map(str, findings)) or "no findings")
    sys.exit(1 if findings else 0)
