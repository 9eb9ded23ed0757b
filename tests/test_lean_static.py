"""Static checks of the Lean package, for machines without a Lean toolchain (see tests/lean_lint.py).

Two checks: the lint passes on every Lean file of the repository, and every capitalised Lean name
the package uses (``IO.Process.spawn``, ``TacticM``) has a row in the evidence table of
``docs/lean.md``, which says where in Lean's source it was seen. The table is compared both ways,
so it can neither miss a name nor keep one the code no longer uses. The lint's own rules are
tested on small snippets and on the file that once broke the build.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from lean_lint import blank_comments_and_strings, core_names, lint_file, lint_package, lint_source

from support import REPO

PACKAGE = sorted((REPO / "LLMstep").glob("*.lean"))
LEAN_FILES = [REPO / "LLMstep.lean", *PACKAGE, *sorted((REPO / "examples").glob("*.lean"))]
LEAN_FILES += sorted((REPO / "tests" / "lean").glob("*.lean"))
BROKEN_PROTOCOL = REPO / "tests" / "fixtures" / "lean_lint" / "protocol_before_fix.lean.txt"
DOC = REPO / "docs" / "lean.md"
#: A lean4 path at a commit (or at the search index's file id), or a file of a project that builds on v4.33.
SEEN_IN = re.compile(
    r"`src/\S+\.lean` (?:@ `[0-9a-f]{7,40}`|\(index ids? \d+)"
    r"|(?:Batteries|BatteriesTest|LeanCopilot|Mathlib)/\S+\.lean"
)


@pytest.mark.parametrize("path", LEAN_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_lean_file_passes_the_lint(path: Path) -> None:
    assert lint_file(path) == []


def test_every_module_imports_what_it_uses_from_the_others() -> None:
    assert lint_package(REPO) == []


def test_a_module_that_lost_an_import_is_caught(tmp_path: Path) -> None:
    """Rank.lean without `import LLMstep.Protocol` (a mistake made once): ScoredTactic would be unknown."""
    shutil.copytree(REPO / "LLMstep", tmp_path / "LLMstep")
    rank = tmp_path / "LLMstep" / "Rank.lean"
    rank.write_text(rank.read_text(encoding="utf-8").replace("import LLMstep.Protocol\n", ""), encoding="utf-8")
    findings = lint_package(tmp_path)
    assert [(Path(f.path).name, f.rule) for f in findings] == [("Rank.lean", "unimported-name")]
    assert "ScoredTactic" in findings[0].message and "LLMstep.Protocol" in findings[0].message


def test_an_option_used_without_importing_options_is_caught(tmp_path: Path) -> None:
    package = tmp_path / "LLMstep"
    package.mkdir()
    (package / "Options.lean").write_text('register_option llmstep.url : String := { defValue := "" }\n')
    (package / "Use.lean").write_text("import Lean\ndef f (o : Lean.Options) : String := llmstep.url.get o\n")
    assert [f.rule for f in lint_package(tmp_path)] == ["unimported-name"]


def test_the_lint_catches_the_compile_error_that_broke_protocol_lean() -> None:
    """The package's Protocol.lean before the fix: `toJson` inside `def Request.toJson`."""
    findings = lint_file(BROKEN_PROTOCOL)
    assert [(f.line, f.rule) for f in findings] == [(39, "self-shadowing")]
    assert "Lean.toJson" in findings[0].message


@pytest.mark.parametrize(
    ("rule", "code"),
    [
        ("self-shadowing", "def Foo.toString (f : Foo) : String :=\n  toString f.n\n"),
        ("self-shadowing", "private def A.B.run (x : Nat) : IO Unit := run #[x]\n"),
        ("blocking-process", 'def f : IO Unit := do\n  let _ ← IO.Process.output { cmd := "curl" }\n'),
        ("blocking-process", 'def f : IO String := IO.Process.run { cmd := "ls" }\n'),
        ("suggestion-style", 'def s : Suggestion := { suggestion := "x", style? := none }\n'),
        ("suggestion-message-data", 'def s : Suggestion := { suggestion := "x", messageData? := none }\n'),
        ("string-range", "def r (x : String.Range) : Nat := 0\n"),
        ("module-system", "module\n\npublic import Lean\n"),
        ("string-mk", "def s : String := String.mk ['a']\n"),
        ("string-trim", "def s (t : String) : String := t.trim\n"),
        ("substring", "def s (t : String) : Substring := t.toSubstring\n"),
        ("lean-hashset", "def s : Lean.HashSet Nat := {}\n"),
        ("option-group", 'register_option a.b : Nat := { defValue := 1, group := "x" }\n'),
        ("option-in-namespace", "namespace Foo\nregister_option foo.bar : Nat := { defValue := 1 }\nend Foo\n"),
    ],
    ids=lambda v: v if isinstance(v, str) and "\n" not in v else "",
)
def test_each_rule_catches_its_mistake(rule: str, code: str) -> None:
    assert rule in {f.rule for f in lint_source("snippet.lean", code)}


@pytest.mark.parametrize(
    "code",
    [
        # Qualified, or the definition's own name used only after a dot, or as a recursive call on
        # a value of its own type through dot notation.
        'def Request.toJsonObject (r : Request) : Json :=\n  Json.mkObj [("n", Lean.toJson r.n)]\n',
        "def Request.body (r : Request) : String :=\n  r.toJsonObject.compress\n",
        # Prose and messages may name what code may not use.
        "/-- Not `IO.Process.output`: it blocks. -/\ndef f : Nat := 1 -- nor IO.Process.run\n",
        'def m : String := "use IO.Process.output and String.mk"\n',
        # An option after its namespace has ended.
        "namespace Foo\nend Foo\nregister_option foo.bar : Nat := { defValue := 1 }\n",
    ],
)
def test_correct_code_passes(code: str) -> None:
    assert lint_source("snippet.lean", code) == []


def test_blanking_keeps_lines_and_handles_nested_comments() -> None:
    code = 'a /- x /- y -/ z -/ b\n-- c\n"d\\"e" f\n'
    blanked = blank_comments_and_strings(code)
    assert blanked.count("\n") == code.count("\n")
    assert blanked.split() == ["a", "b", '"', '"', "f"]


def evidence_names() -> set[str]:
    """The names in the first column of docs/lean.md's evidence table, as written there."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Evidence", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for row in section.splitlines():
        if row.startswith("| `"):
            names.update(re.findall(r"`([^`]+)`", row.split("|")[1]))
    return names


def test_every_core_name_the_package_uses_is_in_the_evidence_table() -> None:
    used = core_names([p.read_text(encoding="utf-8") for p in PACKAGE])
    listed = evidence_names()
    assert used, "the extraction found no names at all"
    assert sorted(used - listed) == [], "add these names, with where each was seen, to docs/lean.md's evidence table"
    # A listed name is stale when the code uses neither it nor, through dot notation on a value
    # (`child.kill` for `Child.kill`), its last component.
    code = "\n".join(blank_comments_and_strings(p.read_text(encoding="utf-8")) for p in PACKAGE)
    words = set(re.findall(r"[\w'?!]+", code))
    stale = [n for n in listed if n[:1].isupper() and n not in used and n.split(".")[-1] not in words]
    assert stale == [], "the package no longer uses these; drop them from the table"


def test_every_evidence_row_says_where_the_name_was_seen() -> None:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Evidence", 1)[1].split("\n## ", 1)[0]
    rows = [r for r in section.splitlines() if r.startswith("| `")]
    assert rows
    for row in rows:
        seen = row.split("|")[2]
        assert re.search(SEEN_IN, seen), (
            f"say where this was seen (a lean4 path at a commit, or a file that builds): {row}"
        )
