"""Parser and validator (dsl §1, §2; server-contract §7.1)."""

import textwrap

import pytest

from app.domain.playbook import parse_playbook
from app.errors import InvalidPlaybook

HEAD = "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: t, path: a/t}\n"


def doc(workflow: str, extra: str = "") -> str:
    return HEAD + extra + "workflow:\n" + textwrap.indent(textwrap.dedent(workflow), "  ")


OK_STEP = "- step: start\n  tool: {kind: noop}\n"

# (document, expected step, expected field, reason fragment)
MALFORMED = [
    ("key: [unclosed", None, None, "Invalid YAML"),
    ("- just\n- a list\n", None, None, "mapping"),
    (
        "kind: Playbook\nmetadata: {name: x}\nworkflow: [{step: a, tool: {kind: noop}}]\n",
        None,
        "apiVersion",
        "apiVersion",
    ),
    (
        "apiVersion: noetl.io/v2\nkind: Playbook\nworkflow: [{step: a, tool: {kind: noop}}]\n",
        None,
        "metadata",
        "metadata",
    ),
    (
        "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {path: x}\n"
        "workflow: [{step: a, tool: {kind: noop}}]\n",
        None,
        "metadata.name",
        "name",
    ),
    (
        "apiVersion: noetl.io/v2\nkind: Subscription\nmetadata: {name: x}\n"
        "workflow: [{step: a, tool: {kind: noop}}]\n",
        None,
        "kind",
        "Playbook",
    ),
    (HEAD, None, "workflow", "workflow"),
    (HEAD + "workflow: []\n", None, "workflow", "non-empty"),
    (doc(OK_STEP + OK_STEP), "start", "step", "Duplicate step name 'start'"),
    (
        doc("- step: start\n  tool: {kind: noop}\n  next: {arcs: [{step: nowhere}]}\n"),
        "start",
        "next.arcs[0].step",
        "'nowhere'",
    ),
    (doc(OK_STEP, "executor: {spec: {entry_step: ghost}}\n"), None, "executor.spec.entry_step", "ghost"),
    (doc("- step: start\n  desc: no tool\n"), "start", "tool", "Step 'start': Missing 'tool' field"),
    (doc("- step: start\n  tool: {kind: teleport}\n"), "start", "tool.kind", "teleport"),
    (doc("- step: start\n  tool: {kind: workbook, name: missing}\n"), "start", "tool.name", "missing"),
    (doc("- step: start\n  type: python\n  tool: {kind: noop}\n"), "start", "type", "legacy"),
    (doc("- step: start\n  tool: {kind: noop}\n  case: []\n"), "start", "case", "legacy"),
    (doc("- step: start\n  tool: {kind: noop}\n  set_ctx: {a: 1}\n"), "start", "set_ctx", "legacy"),
    (doc("- step: start\n  tool: {kind: noop}\n  loop: {iterator: x}\n"), "start", "loop.in", "'in'"),
    (
        doc("- step: start\n  tool: {kind: noop}\n  next: {arcs: [{step: end, when: true}]}\n"),
        "start",
        "next.arcs[0].when",
        "string",
    ),
    (
        doc("- step: start\n  tool: {kind: python, code: 'result = {{ x + }}'}\n"),
        "start",
        "tool.code",
        "invalid template",
    ),
    (
        doc("- step: start\n  tool: {kind: noop}\n  loop: {in: '{{ xs }}'}\n"),
        "start",
        "loop.iterator",
        "iterator",
    ),
    (doc("- step: start\n  tool: [{name: a, kind: bogus}]\n"), "start", "tool[0].kind", "bogus"),
    (doc("- step: start\n  tool: {kind: noop}\n  outcome: {x: 1}\n"), "start", "outcome", "legacy"),
]


@pytest.mark.parametrize(("text", "step", "field", "reason"), MALFORMED)
def test_malformed_playbooks_are_rejected(text, step, field, reason):
    with pytest.raises(InvalidPlaybook) as ei:
        parse_playbook(text)
    problems = ei.value.problems
    assert problems, "structured problems expected"
    match = [p for p in problems if p["field"] == field and p["step"] == step]
    assert match, problems
    assert reason in match[0]["reason"]
    assert reason in str(ei.value) or problems[0]["reason"] == str(ei.value)
    assert set(match[0]) == {"step", "field", "reason", "line"}


def test_line_numbers_point_at_the_problem():
    text = doc("- step: start\n  tool: {kind: noop}\n- step: b\n  tool: {kind: nope}\n")
    with pytest.raises(InvalidPlaybook) as ei:
        parse_playbook(text)
    assert ei.value.problems[0]["line"] == 8  # the `tool: {kind: nope}` line


def test_all_problems_collected():
    text = doc("- step: a\n- step: b\n  tool: {kind: x}\n  next: q\n")
    with pytest.raises(InvalidPlaybook) as ei:
        parse_playbook(text)
    fields = {p["field"] for p in ei.value.problems}
    assert {"tool", "tool.kind", "next.arcs[0].step"} <= fields


def test_end_target_allowed_and_warnings():
    text = (
        HEAD
        + "tracing: {}\nvars: {}\nworkflow:\n"
        + textwrap.indent(
            textwrap.dedent("""\
        - step: start
          tool: {kind: noop}
          sink: {table: t}
          next: {arcs: [{step: end, cond: x}]}
        - step: orphan
          tool: {kind: noop, eval: [{expr: x}]}
        """),
            "  ",
        )
    )
    pb, warnings = parse_playbook(text)
    joined = "\n".join(warnings)
    assert "orphan" in joined and "unreachable" in joined
    assert "tracing" in joined and "vars" in joined and "sink" in joined and "eval" in joined
    assert "cond" in joined
    assert pb.step("start").next.arcs[0].when is None


def test_entry_step_rules():
    pb, _ = parse_playbook(doc("- step: a\n  tool: {kind: noop}\n- step: start\n  tool: {kind: noop}\n"))
    assert pb.entry_step == "start"
    pb, _ = parse_playbook(doc("- step: a\n  tool: {kind: noop}\n- step: b\n  tool: {kind: noop}\n"))
    assert pb.entry_step == "a"
    pb, _ = parse_playbook(
        doc(
            "- step: a\n  tool: {kind: noop}\n- step: start\n  tool: {kind: noop}\n",
            "executor: {spec: {entry_step: a}}\n",
        )
    )
    assert pb.entry_step == "a"


def test_next_sugar_shapes():
    pb, _ = parse_playbook(
        doc("""\
        - step: start
          tool: {kind: noop}
          next: b
        - step: b
          tool: {kind: noop}
          next: [c, {step: d, when: "{{ x }}", args: {k: 1}}]
        - step: c
          tool: {kind: noop}
          next: [{when: "{{ y }}", then: [{step: d}]}]
        - step: d
          tool: {kind: noop}
        """)
    )
    assert [a.step for a in pb.step("start").next.arcs] == ["b"]
    b = pb.step("b").next
    assert b.mode == "exclusive" and [a.step for a in b.arcs] == ["c", "d"]
    assert b.arcs[1].set == {"k": 1} and b.arcs[1].has_when
    assert pb.step("c").next.arcs[0].when == "{{ y }}"


def test_workbook_resolution_merges_input():
    pb, _ = parse_playbook(
        doc(
            "- step: start\n  tool: {kind: workbook, name: calc, input: {b: 2}}\n",
            "workbook:\n  - name: calc\n"
            "    tool: {kind: python, input: {a: 1, b: 0}, code: 'result = a + b'}\n",
        )
    )
    tool = pb.step("start").tool
    assert tool["kind"] == "python" and tool["input"] == {"a": 1, "b": 2}
    assert pb.step("start").tool_kind == "python"


def test_single_tool_with_policy_becomes_pipeline_and_args_alias():
    pb, _ = parse_playbook(
        doc("""\
        - step: start
          args: {s: 1}
          tool:
            kind: http
            url: http://x
            args: {q: 1}
            spec: {policy: {rules: [{when: "{{ output.status == 'error' }}", then: {do: retry}}]}}
        """)
    )
    st = pb.step("start")
    assert st.tool_kind == "task_sequence" and st.wrapped_single
    assert st.pipeline[0]["name"] == "start_task" and st.pipeline[0]["input"] == {"q": 1}
    assert st.input == {"s": 1}


def test_pipeline_item_shapes():
    pb, _ = parse_playbook(
        doc(
            "- step: start\n  tool:\n    - {name: a, kind: noop}\n    - {kind: noop}\n"
            "    - b: {kind: python, code: 'result = 1'}\n"
        )
    )
    assert [t["name"] for t in pb.step("start").pipeline] == ["a", "task_1", "b"]


def test_loop_model():
    pb, _ = parse_playbook(
        doc(
            "- step: start\n  tool: {kind: noop}\n  loop:\n    in: '{{ xs }}'\n"
            "    iterator: x\n    spec: {mode: parallel, max_in_flight: 2}\n"
        )
    )
    lp = pb.step("start").loop
    assert (lp.iterator, lp.mode, lp.max_in_flight) == ("x", "parallel", 2)
