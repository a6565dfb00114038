"""lsp-bench's tasks (lspbench/tasks.py): the HumanEval suite, holes derived from its canonical
solutions, per-problem sampling, task files of both schemas and the errors that name the line."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from lspbench.tasks import (
    INFILL_KINDS,
    SPANS_PER_PROBLEM,
    Kind,
    Layout,
    Task,
    TaskFileError,
    auto_indent,
    derive_infill,
    load_humaneval,
    load_tasks,
    problem_of,
    sample_per_problem,
)


@pytest.fixture(scope="module")
def problems() -> list[Task]:
    return load_humaneval()


@pytest.fixture(scope="module")
def derived(problems: list[Task]) -> list[Task]:
    return derive_infill(problems)


# --- HumanEval ------------------------------------------------------------------------------


def test_humaneval_has_164_completion_tasks(problems: list[Task]) -> None:
    assert len(problems) == 164
    assert [p.task_id for p in problems] == [f"HumanEval/{i}" for i in range(164)]
    for p in problems:
        assert p.kind is Kind.COMPLETE
        assert p.reference is not None and p.reference.strip()
        assert p.suffix == ""
        assert p.entry_point.isidentifier()
        assert "def check(" in p.test
        assert f"def {p.entry_point}(" in p.prefix


def test_humaneval_is_loaded_the_same_each_time(problems: list[Task]) -> None:
    assert load_humaneval() == problems


# --- derived infill holes ---------------------------------------------------------------------


def test_derived_counts_per_kind(derived: list[Task]) -> None:
    counts = Counter(t.kind for t in derived)
    # HumanEval-infilling (Fried et al., 2022): 1,033 single-line and 1,640 random-span tasks.
    assert counts[Kind.SINGLE_LINE] == 1033
    assert counts[Kind.RANDOM_SPAN] == 1640 == 164 * SPANS_PER_PROBLEM
    assert counts[Kind.MULTI_LINE] > 0
    assert set(counts) == set(INFILL_KINDS)


def test_every_derived_task_reassembles_to_its_problem(problems: list[Task], derived: list[Task]
                                                         ) -> None:
    by_id = {p.task_id: p for p in problems}
    for t in derived:
        p = by_id[problem_of(t.task_id)]
        assert t.reference is not None and p.reference is not None
        assert t.prefix + t.reference + t.suffix == p.prefix + p.reference, t.task_id
        assert t.program(t.reference) == p.program(p.reference)
        assert t.prefix.startswith(p.prefix)
        assert (t.entry_point, t.test) == (p.entry_point, p.test)


def test_derived_holes_have_the_shape_of_their_kind(derived: list[Task]) -> None:
    for t in derived:
        assert t.reference is not None and t.reference.strip(), t.task_id
        if t.kind is Kind.SINGLE_LINE:
            assert "\n" not in t.reference, t.task_id
            assert t.reference == t.reference.strip(), t.task_id  # indentation stays in the prefix
            assert t.prefix.endswith(("\n", " ", "\t")), t.task_id  # the cursor on its line
            # the rest of the line (trailing blanks) and its line break stay in the suffix
            assert re.match(r"[ \t]*(\r?\n|$)", t.suffix), t.task_id
        elif t.kind is Kind.MULTI_LINE:
            assert "\n" in t.reference, t.task_id


def test_derived_task_ids_are_unique_and_name_their_problem_and_kind(derived: list[Task]) -> None:
    ids = [t.task_id for t in derived]
    assert len(set(ids)) == len(ids)
    for t in derived:
        assert re.fullmatch(rf"HumanEval/\d+/{t.kind.value}/\d+-\d+", t.task_id), t.task_id
        assert problem_of(t.task_id) == t.task_id.rsplit("/", 2)[0]


def test_derivation_is_deterministic(problems: list[Task], derived: list[Task]) -> None:
    assert derive_infill(problems) == derived


def test_derive_only_the_kinds_asked_for(problems: list[Task]) -> None:
    single = derive_infill(problems[:20], [Kind.SINGLE_LINE])
    assert single and all(t.kind is Kind.SINGLE_LINE for t in single)
    assert single == [t for t in derive_infill(problems[:20]) if t.kind is Kind.SINGLE_LINE]
    assert derive_infill(problems[:5], []) == []


def test_problems_without_a_reference_are_skipped(problems: list[Task]) -> None:
    p = problems[0]
    bare = Task(p.task_id, p.prefix, p.suffix, p.entry_point, p.test, p.kind, None)
    assert derive_infill([bare]) == []


def test_problem_of() -> None:
    assert problem_of("HumanEval/3/single-line/2-2") == "HumanEval/3"
    assert problem_of("HumanEval/3/multi-line/2-5") == "HumanEval/3"
    assert problem_of("HumanEval/12/random-span/10-40") == "HumanEval/12"
    assert problem_of("HumanEval/3") == "HumanEval/3"
    assert problem_of("mine") == "mine"


# --- sample_per_problem -----------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 3])
def test_sample_per_problem_keeps_at_most_k_per_problem_and_kind(derived: list[Task], k: int
                                                                 ) -> None:
    sample = sample_per_problem(derived, k)
    groups = Counter((problem_of(t.task_id), t.kind) for t in derived)
    picked = Counter((problem_of(t.task_id), t.kind) for t in sample)
    assert set(picked) == set(groups)  # every group keeps something
    for group, size in groups.items():
        assert picked[group] == min(k, size)


def test_sample_per_problem_is_deterministic_and_keeps_order(derived: list[Task]) -> None:
    sample = sample_per_problem(derived, 2)
    assert sample == sample_per_problem(list(derived), 2)
    position = {t.task_id: i for i, t in enumerate(derived)}
    indices = [position[t.task_id] for t in sample]
    assert indices == sorted(indices)
    assert len(set(indices)) == len(indices)


def test_sample_per_problem_zero_keeps_everything(derived: list[Task]) -> None:
    assert sample_per_problem(derived, 0) == derived
    assert sample_per_problem(derived, -1) == derived


def test_sample_per_problem_of_the_plain_suite(problems: list[Task]) -> None:
    assert sample_per_problem(problems, 1) == problems  # one task per problem already


# --- task files ---------------------------------------------------------------------------------

HE = {"task_id": "he/1", "prompt": "def f(x):\n", "entry_point": "f",
      "test": "def check(c):\n    assert c(1) == 2\n"}
INF = {"task_id": "inf/1", "prefix": "def f(x):\n    return ", "suffix": "\n", "entry_point": "f",
       "test": "def check(c):\n    assert c(1) == 2\n"}


def write(path: Path, lines: list[object]) -> Path:
    """One line per item: dicts and lists as JSON, strings as they are."""
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines),
                    encoding="utf-8")
    return path


def error_of(path: Path) -> str:
    with pytest.raises(TaskFileError) as exc:
        load_tasks(path)
    return str(exc.value)


def test_humaneval_schema_file(tmp_path: Path) -> None:
    path = write(tmp_path / "he.jsonl", [HE, {**HE, "task_id": "he/2",
                                              "canonical_solution": "    return x + 1\n"}])
    a, b = load_tasks(path)
    assert a == Task("he/1", "def f(x):\n", "", "f", HE["test"], Kind.COMPLETE, None)
    assert b.kind is Kind.COMPLETE and b.reference == "    return x + 1\n" and b.suffix == ""
    assert load_tasks(str(path)) == [a, b]  # a str path too


def test_infill_schema_file(tmp_path: Path) -> None:
    path = write(tmp_path / "inf.jsonl", [INF, {**INF, "task_id": "inf/2", "middle": "x + 1"}])
    a, b = load_tasks(path)
    assert a == Task("inf/1", INF["prefix"], "\n", "f", INF["test"], Kind.INFILL, None)
    assert b.kind is Kind.INFILL and b.reference == "x + 1"
    assert b.program(b.reference) == "def f(x):\n    return x + 1\n"


def test_null_reference_is_no_reference(tmp_path: Path) -> None:
    (t,) = load_tasks(write(tmp_path / "t.jsonl", [{**HE, "canonical_solution": None}]))
    assert t.reference is None


def test_gzipped_file(tmp_path: Path) -> None:
    path = tmp_path / "he.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps(HE) + "\n" + json.dumps({**HE, "task_id": "he/2"}) + "\n")
    assert [t.task_id for t in load_tasks(path)] == ["he/1", "he/2"]


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", ["", INF, "   ", "", {**INF, "task_id": "inf/2"}, "\t"])
    assert [t.task_id for t in load_tasks(path)] == ["inf/1", "inf/2"]


def test_blank_lines_count_in_the_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", ["", INF, "", "{oops"])
    assert f"{path}:4:" in error_of(path)


def test_unicode_and_crlf_files(tmp_path: Path) -> None:
    row = {**INF, "prefix": "def f(x):\n    s = 'é😀'\n    return "}
    path = tmp_path / "t.jsonl"
    path.write_bytes((json.dumps(row, ensure_ascii=False) + "\r\n").encode("utf-8"))
    (t,) = load_tasks(path)
    assert t.prefix == row["prefix"]


@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\x85"])
def test_unicode_line_separators_inside_json_strings(tmp_path: Path, char: str) -> None:
    row = {**INF, "prefix": f"def f(x):\n    s = 'a{char}b'\n    return "}
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    (t,) = load_tasks(path)
    assert t.prefix == row["prefix"]


def test_invalid_json_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", [HE, {**HE, "task_id": "b"}, "{oops", {**HE, "task_id": "c"}])
    message = error_of(path)
    assert message.startswith(f"{path}:3: ")
    assert "JSON" in message


def test_json_array_instead_of_object(tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", [[HE]])
    message = error_of(path)
    assert message.startswith(f"{path}:1: ")
    assert "expected a JSON object" in message and "list" in message


@pytest.mark.parametrize("value", ["3", '"text"', "null"])
def test_json_scalars_are_not_tasks(tmp_path: Path, value: str) -> None:
    path = write(tmp_path / "t.jsonl", [HE, value])
    assert error_of(path).startswith(f"{path}:2: expected a JSON object")


@pytest.mark.parametrize("schema, field", [("humaneval", key) for key in ("task_id", "entry_point",
                                                                         "test")]
                         + [("infill", key) for key in ("task_id", "suffix", "entry_point", "test")])
def test_missing_field_on_line_2(tmp_path: Path, schema: str, field: str) -> None:
    first = HE if schema == "humaneval" else INF
    second = {k: v for k, v in {**first, "task_id": "two"}.items() if k != field}
    path = write(tmp_path / "t.jsonl", [first, second])
    message = error_of(path)
    assert message.startswith(f"{path}:2: ")
    assert f"missing field {field!r}" in message and schema in message


def test_schema_comes_from_the_first_line(tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", [HE, INF])  # an infill task in a HumanEval file
    message = error_of(path)
    assert message.startswith(f"{path}:2: ") and "missing field 'prompt'" in message


@pytest.mark.parametrize("field, value", [("task_id", 7), ("prompt", ["def f():"]),
                                          ("entry_point", None), ("test", {"a": 1})])
def test_non_string_field(tmp_path: Path, field: str, value: object) -> None:
    path = write(tmp_path / "t.jsonl", [HE, {**HE, "task_id": "two", field: value}])
    message = error_of(path)
    assert message.startswith(f"{path}:2: ") and f"field {field!r} must be a string" in message


@pytest.mark.parametrize("row", [{**HE, "canonical_solution": 3}, {**INF, "middle": ["x"]}])
def test_non_string_reference(tmp_path: Path, row: dict[str, object]) -> None:
    path = write(tmp_path / "t.jsonl", [row])
    assert error_of(path).startswith(f"{path}:1: field ")


def test_duplicate_task_id(tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", [HE, {**HE, "task_id": "x"}, {**HE, "prompt": "def g():\n"}])
    message = error_of(path)
    assert message.startswith(f"{path}:3: ") and "'he/1' appears twice" in message


@pytest.mark.parametrize("content", ["", "\n\n", "  \n\t\n"])
def test_empty_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(content, encoding="utf-8")
    message = error_of(path)
    assert str(path) in message and "no tasks" in message


def test_first_line_of_neither_schema_lists_the_fields(tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", [{"id": 1, "code": "x"}, HE])
    message = error_of(path)
    assert message.startswith(f"{path}:1: ") and "neither schema" in message
    assert "task_id, prompt, entry_point, test" in message
    assert "task_id, prefix, suffix, entry_point, test" in message
    assert "found: code, id" in message


def test_empty_object_as_first_line(tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", [{}])
    assert "found: nothing" in error_of(path)


@pytest.mark.parametrize("entry_point", ["not a name", "", "f()", "1f", "a.b"])
def test_entry_point_must_be_an_identifier(tmp_path: Path, entry_point: str) -> None:
    path = write(tmp_path / "t.jsonl", [INF, {**INF, "task_id": "two", "entry_point": entry_point}])
    message = error_of(path)
    assert message.startswith(f"{path}:2: ") and "entry_point an identifier" in message


@pytest.mark.parametrize("task_id", ["", "   "])
def test_task_id_must_not_be_blank(tmp_path: Path, task_id: str) -> None:
    path = write(tmp_path / "t.jsonl", [{**HE, "task_id": task_id}])
    assert error_of(path).startswith(f"{path}:1: task_id must be non-empty")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.jsonl"
    message = error_of(path)
    assert message.startswith(f"{path}: cannot read the task file")


def test_a_folder_is_not_a_task_file(tmp_path: Path) -> None:
    assert error_of(tmp_path).startswith(f"{tmp_path}: cannot read")


def test_not_utf8_and_not_gzip(tmp_path: Path) -> None:
    bad = tmp_path / "t.jsonl"
    bad.write_bytes(b"\xff\xfe\x00bad")
    assert "cannot read" in error_of(bad)
    fake_gz = tmp_path / "t.jsonl.gz"
    fake_gz.write_text(json.dumps(HE) + "\n", encoding="utf-8")
    assert "cannot read" in error_of(fake_gz)


def test_task_file_error_is_a_value_error() -> None:
    assert issubclass(TaskFileError, ValueError)


# --- Task ----------------------------------------------------------------------------------------


def test_test_program() -> None:
    t = Task("x", "def f(x):\n    return ", "\n", "f", "def check(c):\n    assert c(1) == 2",
             Kind.INFILL)
    program = t.test_program("x + 1")
    assert program.startswith("def f(x):\n    return x + 1\n")
    assert t.program("x + 1") in program and t.test in program
    assert program.index(t.program("x + 1")) < program.index(t.test)
    assert program.endswith("check(f)\n")
    ns: dict[str, object] = {}
    exec(compile(program, "<task>", "exec"), ns)  # the canonical filling passes


def test_test_program_of_humaneval(problems: list[Task]) -> None:
    for p in problems[:10]:
        assert p.reference is not None
        program = p.test_program(p.reference)
        assert program.startswith(p.prefix + p.reference)
        assert p.test in program
        assert program.endswith(f"check({p.entry_point})\n")
        compile(program, p.task_id, "exec")


def test_to_json_round_trips_through_an_infill_file(tmp_path: Path, derived: list[Task]) -> None:
    some = derived[::500]
    path = write(tmp_path / "d.jsonl", [t.to_json() for t in some])
    loaded = load_tasks(path)
    assert [(t.task_id, t.prefix, t.suffix, t.reference, t.entry_point, t.test) for t in loaded] \
        == [(t.task_id, t.prefix, t.suffix, t.reference, t.entry_point, t.test) for t in some]
    assert all(t.kind is Kind.INFILL for t in loaded)


# --- cursor layouts ---------------------------------------------------------------------------


@pytest.mark.parametrize("layout", list(Layout))
def test_every_layout_reassembles_to_the_problem(problems: list[Task], layout: Layout) -> None:
    by_id = {p.task_id: p for p in problems}
    tasks = derive_infill(problems, INFILL_KINDS, layout)
    assert [t.task_id for t in tasks] == [t.task_id for t in derive_infill(problems)]
    for t in tasks:
        p = by_id[problem_of(t.task_id)]
        assert t.reference is not None and p.reference is not None
        assert t.program(t.reference, t.reference_cut) == p.program(p.reference), t.task_id
        if t.kind is Kind.RANDOM_SPAN or layout is Layout.LINE:
            assert t.reference_cut == 0
        line = t.prefix[t.prefix.rfind("\n") + 1:]
        if t.kind is not Kind.RANDOM_SPAN:
            # a line of its own (a solution's line may end in spaces)
            assert not line.strip() and not t.suffix.split("\n", 1)[0].strip()
            if layout is Layout.COLUMN0:
                assert line == ""
            if layout is Layout.ENTER:
                assert line == auto_indent(t.prefix[:len(t.prefix) - len(line)])


def test_enter_layout_cursor_deeper_than_the_hole_needs_a_cut(problems: list[Task]) -> None:
    """The first line after a block: the editor indents to the block's body, the hole's line
    is one level out; only replacing the whitespace can be right."""
    tasks = derive_infill(problems, [Kind.SINGLE_LINE], Layout.ENTER)
    cut = [t for t in tasks if t.reference_cut]
    assert 0 < len(cut) < len(tasks) // 4
    for t in cut:
        assert t.reference is not None
        line = t.prefix[t.prefix.rfind("\n") + 1:]
        assert t.reference_cut == len(line)
        own = len(t.reference) - len(t.reference.lstrip())
        assert own < len(line)  # the hole's own indentation is shallower
        assert t.program(t.reference) != t.program(t.reference, t.reference_cut)


@pytest.mark.parametrize("before,indent", [
    ("def f(x):\n", "    "),
    ("def f(x):\n    for i in x:  # loop\n", "        "),
    ("def f(x):\n    y = 1\n\n", "    "),
    ("def f(x):\n    if x:\n        return 1\n", "    "),
    ("def f(x):\n    while x:\n        break\n", "    "),
    ("x = [\n", ""),
    ("", ""),
    ("def f(x):\n    return_value = 1\n", "    "),  # not the keyword
])
def test_auto_indent(before: str, indent: str) -> None:
    assert auto_indent(before) == indent


def test_cut_only_replaces_the_cursor_lines_whitespace() -> None:
    t = Task("t", "def f():\n    x = 1\n        ", "\n", "f", "", Kind.INFILL)
    assert t.cuttable(100) == 8 and t.cuttable(3) == 3 and t.cuttable(-1) == 0
    assert t.program("    return x", 8) == "def f():\n    x = 1\n    return x\n"
    s = Task("s", "def f():\n    x = ", "\n", "f", "", Kind.INFILL)
    assert s.cuttable(4) == 0  # the line holds code: nothing is replaced


def test_task_file_keeps_the_cut(tmp_path: Path) -> None:
    row = {"task_id": "a", "prefix": "def f():\n        ", "suffix": "\n", "entry_point": "f",
           "test": "", "middle": "    return 1", "middle_cut": 8}
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(row) + "\n")
    (t,) = load_tasks(path)
    assert t.reference_cut == 8 and t.to_json()["middle_cut"] == 8
    path.write_text(json.dumps({**row, "middle_cut": -1}) + "\n")
    with pytest.raises(TaskFileError, match="middle_cut"):
        load_tasks(path)
