"""Engine behaviour, one test per dsl §8 item and runner-up trap, driven like a worker would."""

from app.domain.engine import decide
from tests.unit.domain.helpers import NOW, SERVER, Sim, make_playbook, py

DEMO = """\
- step: start
  tool: {kind: noop}
  set: {ctx.total: 0}
  next: {arcs: [{step: square}]}
- step: square
  loop: {in: "{{ items }}", iterator: n, spec: {mode: parallel, max_in_flight: 2}}
  tool:
    kind: python
    input: {n: "{{ iter.n }}"}
    code: "result = {'sq': n * n}"
  next:
    arcs: [{step: total, when: "{{ event.name == 'loop.done' }}"}]
- step: total
  tool:
    kind: python
    input: {rows: "{{ square.results }}"}
    code: "result = {'sum': sum(r['sq'] for r in rows)}"
  set: {ctx.total: "{{ total.sum }}"}
  next:
    spec: {mode: exclusive}
    arcs:
      - {step: big, when: "{{ ctx.total > threshold }}"}
      - {step: small}
- step: big
  tool: {kind: noop, result: {path: big}}
  next: {arcs: [{step: end}]}
- step: small
  tool: {kind: noop, result: {path: small}}
  next: {arcs: [{step: end}]}
- step: end
  tool: {kind: python, code: "result = {'done': True}"}
"""


def demo_outputs():
    return {
        "square": py(lambda i: {"sq": i["n"] * i["n"]}),
        "total": py(lambda i: {"sum": sum(r["sq"] for r in i["rows"])}),
        "big": {"path": "big"},
        "end": {"done": True},
    }


def test_illustrative_playbook_end_to_end():
    sim = Sim(make_playbook(DEMO, "{items: [1, 2, 3], threshold: 4}"))
    in_flight_peak = 0
    outputs = demo_outputs()
    while sim.pending and not sim.state.terminal:
        in_flight_peak = max(in_flight_peak, sum(1 for c in sim.pending if c.step == "square"))
        cmd = sim.take()
        out = outputs.get(cmd.step, {"status": "ok"})
        sim.complete(cmd, out(cmd) if callable(out) else out)
    assert sim.state.terminal == "COMPLETED"
    assert in_flight_peak == 2
    assert sim.result("square")["results"] == [{"sq": 1}, {"sq": 4}, {"sq": 9}]
    assert sim.result("total") == {"sum": 14}
    assert sim.state.vars["total"] == 14
    assert sim.state.steps["big"].status == "completed"
    assert len(sim.types("step.skipped", "small")) == 1
    assert len(sim.types("step.enter", "end")) == 1
    assert sim.types("playbook.completed")[0]["result"]["context"]["final_step"] == "end"
    assert sim.refold().to_dict() == sim.state.to_dict()


# 1. typed rendering
def test_typed_rendering_in_set_and_inputs():
    sim = Sim(
        make_playbook(
            """\
        - step: start
          tool: {kind: noop}
          set: {ctx.current_page: "{{ initial }}"}
          next: [nxt]
        - step: nxt
          tool: {kind: python, input: {page: "{{ (ctx.current_page | int) + 1 }}", obj: "{{ start }}",
                 flag: "{{ true }}", text: "p{{ ctx.current_page }}"}, code: "result = 1"}
        """,
            "{initial: 1}",
        )
    )
    sim.complete(sim.take(), {"a": {"b": 1}})
    cmd = sim.take("nxt")
    assert cmd.context["input"] == {"page": 2, "obj": {"a": {"b": 1}}, "flag": True, "text": "p1"}
    assert sim.state.vars["current_page"] == 1


# 2. lenient undefined
def test_missing_steps_and_fields_never_raise():
    sim = Sim(
        make_playbook("""\
        - step: start
          tool: {kind: python, input: {v: "{{ ghost.a.b | default('dflt') }}", w: "{{ nope }}"}, code: x}
          next:
            arcs:
              - {step: a, when: "{{ ghost.flag }}"}
              - {step: b}
        - step: a
          tool: {kind: noop}
        - step: b
          tool: {kind: noop}
        """)
    )
    cmd = sim.take()
    assert cmd.context["input"] == {"v": "dflt", "w": None}
    sim.complete(cmd, {})
    assert [c.step for c in sim.pending] == ["b"]


# 3. result addressing
def test_result_addressing_data_alias_and_worker_shapes():
    sim = Sim(
        make_playbook("""\
        - step: start
          tool: {kind: noop}
          next: [http]
        - step: http
          tool: {kind: http, url: "http://x/{{ start.data.executed }}/{{ start.executed }}"}
          next: [pyw]
        - step: pyw
          tool: {kind: python, input: {d: "{{ http.data.k }}", b: "{{ http.body.k }}"}, code: x}
          next: [rw]
        - step: rw
          tool: {kind: python, input: {v: "{{ pyw.v }}"}, code: x}
          next: [last]
        - step: last
          tool: {kind: python, input: {v: "{{ rw.z }}"}, code: x}
        """)
    )
    sim.complete(sim.take(), {"executed": True})
    cmd = sim.take("http")
    assert cmd.context["tool_config"]["url"] == "http://x/True/True"
    sim.complete(cmd, {"status_code": 200, "headers": {}, "data": {"k": 1}, "body": {"k": 1}})
    cmd = sim.take("pyw")
    assert cmd.context["input"] == {"d": 1, "b": 1}
    sim.complete(cmd, {"status": "success", "data": {"v": 7}}, worker="python")
    cmd = sim.take("rw")
    assert cmd.context["input"] == {"v": 7}
    sim.complete(cmd, {"z": 9}, worker="rust")
    assert sim.take("last").context["input"] == {"v": 9}


def test_failed_step_result_is_undefined_and_error_bound():
    sim = Sim(
        make_playbook("""\
        - step: start
          tool: {kind: noop}
          next:
            arcs:
              - {step: ok}
              - {step: handler, when: "{{ event.name == 'call.error' }}", set: {ctx.err: "{{ error }}"}}
        - step: ok
          tool: {kind: noop}
        - step: handler
          tool: {kind: python, input: {r: "{{ start | default('undef') }}"}, code: x}
        """)
    )
    sim.fail(sim.take(), "kaboom")
    cmd = sim.take("handler")
    assert cmd.context["input"] == {"r": "undef"}
    assert sim.state.vars["err"] == "kaboom"
    sim.complete(cmd, {})
    assert sim.state.terminal == "FAILED"
    assert sim.types("step.skipped", "ok")


# 4. set before arcs; arc set before target built; pipeline ctx writes propagate; iter.* does not
def test_set_runs_before_arcs_and_arc_set_before_target():
    sim = Sim(
        make_playbook("""\
        - step: start
          tool: {kind: noop}
          set: {ctx.go: "{{ start.v > 1 }}", iter.local: 1}
          next:
            arcs:
              - {step: yes_, when: "{{ ctx.go }}", set: {ctx.picked: "{{ 'yes' }}"}}
              - {step: no_}
        - step: yes_
          tool: {kind: python, input: {p: "{{ ctx.picked }}", q: "{{ picked }}"}, code: x}
        - step: no_
          tool: {kind: noop}
        """)
    )
    sim.complete(sim.take(), {"v": 2})
    cmd = sim.take("yes_")
    assert cmd.context["input"] == {"p": "yes", "q": "yes"}
    assert "local" not in sim.state.vars
    upd = sim.types("ctx.updated")
    assert upd[0]["result"]["context"]["values"] == {"ctx.go": True}


def test_pipeline_context_updates_reach_later_steps():
    sim = Sim(
        make_playbook("""\
        - step: start
          tool:
            - {name: a, kind: noop}
          next: [b]
        - step: b
          tool: {kind: python, input: {t: "{{ ctx.total }}", u: "{{ other }}"}, code: x}
        """)
    )
    cmd = sim.take()
    assert cmd.tool_kind == "task_sequence"
    sim.complete(
        cmd,
        {
            "a": {"x": 1},
            "x": 1,
            "results": {"a": {"x": 1}},
            "_context_updates": {"ctx.total": 5},
            "ctx": {"other": 6},
        },
    )
    assert sim.take("b").context["input"] == {"t": 5, "u": 6}
    assert "_context_updates" not in sim.result("start")


# 5. exclusive is the default
def test_exclusive_default_and_inclusive_fanout():
    body = """\
        - step: start
          tool: {kind: noop}
          next: {MODE arcs: [{step: a}, {step: b}]}
        - step: a
          tool: {kind: noop}
        - step: b
          tool: {kind: noop}
        """
    sim = Sim(make_playbook(body.replace("MODE ", "")))
    sim.complete(sim.take(), {})
    assert [c.step for c in sim.pending] == ["a"]
    sim = Sim(make_playbook(body.replace("MODE ", "spec: {mode: inclusive}, ")))
    sim.complete(sim.take(), {})
    assert [c.step for c in sim.pending] == ["a", "b"]


# 6. fan-in barrier
FANIN = """\
- step: start
  tool: {kind: noop}
  next: {spec: {mode: inclusive}, arcs: [{step: a}, {step: b}, {step: c, when: "{{ false }}"}]}
- step: a
  tool: {kind: noop}
  next: [join]
- step: b
  tool: {kind: noop}
  next: [join]
- step: c
  tool: {kind: noop}
  next: [join]
- step: join
  tool: {kind: noop}
"""


def test_fan_in_runs_once_after_live_upstreams():
    sim = Sim(make_playbook(FANIN))
    sim.complete(sim.take(), {})
    a, b = sim.take("a"), sim.take("b")
    assert sim.state.steps["c"].status == "skipped"
    sim.complete(b, {})
    assert not sim.pending
    sim.complete(a, {})
    assert [c.step for c in sim.pending] == ["join"]
    assert sim.run() == "COMPLETED"
    assert len(sim.types("step.enter", "join")) == 1


def test_untaken_exclusive_branch_does_not_block_end():
    sim = Sim(make_playbook(DEMO, "{items: [], threshold: 4}"))
    assert sim.run(demo_outputs()) == "COMPLETED"
    assert sim.result("square") == {"results": [], "stats": {"total": 0, "success": 0, "failed": 0}}
    assert sim.state.steps["big"].status == "skipped" and sim.state.steps["small"].status == "completed"
    assert len(sim.types("step.enter", "end")) == 1


# 7. back-edges
PAGES = """\
- step: start
  tool: {kind: noop}
  set: {ctx.offset: 0, ctx.seen: 0}
  next: {arcs: [{step: fetch_page}]}
- step: fetch_page
  tool: {kind: http, url: "{{ api_url }}/users", params: {offset: "{{ ctx.offset }}", limit: 25}}
  next: {arcs: [{step: check}]}
- step: check
  tool:
    kind: python
    input: {page: "{{ fetch_page.data }}", seen: "{{ ctx.seen }}"}
    code: "result = 1"
  set:
    ctx.offset: "{{ ctx.offset + 25 }}"
    ctx.has_more: "{{ check.has_more }}"
    ctx.seen: "{{ check.seen }}"
  next:
    arcs:
      - {step: fetch_page, when: "{{ ctx.has_more == true }}"}
      - {step: summarize, when: "{{ ctx.has_more != true }}"}
- step: summarize
  tool: {kind: python, input: {seen: "{{ ctx.seen }}"}, code: x}
"""


def test_workflow_arc_loop_reenters_with_generations():
    sim = Sim(make_playbook(PAGES, "{api_url: 'http://api'}"))
    offsets = []

    def fetch(cmd):
        off = cmd.context["tool_config"]["params"]["offset"]
        offsets.append(off)
        return {"status_code": 200, "data": {"has_more": off < 50, "items": [1] * 25}}

    def check(cmd):
        page, seen = cmd.context["input"]["page"], cmd.context["input"]["seen"]
        return {"has_more": page["has_more"], "seen": seen + len(page["items"])}

    assert sim.run({"fetch_page": fetch, "check": check, "summarize": {}}) == "COMPLETED"
    assert offsets == [0, 25, 50]
    assert sim.state.steps["fetch_page"].generation == 3
    assert not sim.types("step.skipped", "summarize")
    assert len(sim.types("step.enter", "summarize")) == 1
    assert sim.state.vars["seen"] == 75
    assert sim.refold().to_dict() == sim.state.to_dict()


# 8. completion and failure
def test_terminal_step_ends_run_without_end_and_dead_end_completes():
    sim = Sim(
        make_playbook("""\
        - step: start
          tool: {kind: noop}
          next: {arcs: [{step: end, when: "{{ false }}"}]}
        - step: end
          tool: {kind: noop}
        """)
    )
    assert sim.run() == "COMPLETED"
    assert not sim.types("step.enter", "end")


def test_returned_error_status_fails_step_and_run():
    sim = Sim(
        make_playbook(
            "- step: start\n  tool: {kind: python, code: x}\n  next: [b]\n- step: b\n  tool: {kind: noop}\n"
        )
    )
    sim.complete(sim.take(), {"error": "assert"}, status="error", worker="rust")
    assert sim.state.terminal == "FAILED"
    failed = sim.types("playbook.failed")[0]
    assert failed["error"] == "Failed steps: start" and failed["meta"]["failed_steps"] == ["start"]
    assert not sim.types("step.enter", "b")


def test_failure_while_other_branch_runs():
    sim = Sim(
        make_playbook(
            FANIN.replace("- step: join\n  tool: {kind: noop}\n", "- step: join\n  tool: {kind: noop}\n")
        )
    )
    sim.complete(sim.take(), {})
    a, b = sim.take("a"), sim.take("b")
    sim.fail(a)
    assert sim.state.terminal is None
    sim.complete(b, {})
    # join still runs once the live branch is done; the run ends FAILED
    assert sim.run() == "FAILED"
    assert sim.types("playbook.failed")[0]["error"] == "Failed steps: a"


# 9. task policy: single tool with policy becomes a one-task pipeline; result unwrapped
def test_single_tool_policy_pipeline_command_and_result():
    sim = Sim(
        make_playbook(
            """\
        - step: start
          tool:
            kind: http
            url: "{{ api }}/x"
            spec:
              policy: {rules: [{when: "{{ output.status == 'error' }}", then: {do: retry, attempts: 3}}]}
          next: [b]
        - step: b
          tool: {kind: python, input: {c: "{{ start.status_code }}"}, code: x}
        """,
            "{api: 'http://a'}",
        )
    )
    cmd = sim.take()
    assert cmd.tool_kind == "task_sequence" and cmd.meta["tool_kind"] == "task_sequence"
    task = cmd.context["tool_config"]["tasks"][0]
    assert task["name"] == "start_task" and task["url"] == "{{ api }}/x"
    assert cmd.context["render_context"]["api"] == "http://a"
    sim.complete(
        cmd,
        {
            "start_task": {"status_code": 200},
            "status_code": 200,
            "results": {"start_task": {"status_code": 200}},
        },
    )
    assert sim.result("start") == {"status_code": 200}
    assert sim.take("b").context["input"] == {"c": 200}


# 10. python contract (server side): step input under tool input; loop items injected
def test_inputs_merge_and_loop_items_injected():
    sim = Sim(
        make_playbook(
            """\
        - step: start
          input: {a: 1, b: 1}
          loop: {in: "{{ nums }}", iterator: num}
          tool: {kind: python, input: {b: 2}, code: x}
        """,
            "{nums: [5, 6]}",
        )
    )
    cmd = sim.take()
    assert cmd.context["input"] == {"a": 1, "b": 2, "num": 5, "_index": 0, "_total": 2}
    assert cmd.context["args"] == cmd.context["input"]
    assert cmd.context["render_context"]["num"] == 5 and cmd.context["render_context"]["iter"]["num"] == 5
    meta = cmd.meta
    assert (meta["iteration_index"], meta["iteration_total"], meta["iterator_step"], meta["item_var"]) == (
        0,
        2,
        "start",
        "num",
    )
    assert meta["loop_event_id"] == sim.types("step.enter", "start")[0]["event_id"]


# runner-up traps
def test_loop_collection_coercion():
    for coll, expected in (("{a: 1}", [{"key": "a", "value": 1}]), ("3", [0, 1, 2]), ("'x, y'", ["x", "y"])):
        sim = Sim(
            make_playbook(
                '- step: start\n  loop: {in: "{{ c }}", iterator: it, spec: {mode: parallel}}\n'
                "  tool: {kind: noop}\n",
                f"{{c: {coll}}}",
            )
        )
        assert [c.context["input"]["it"] for c in sim.pending] == expected


def test_loop_over_null_fails_execution_naming_step():
    sim = Sim(
        make_playbook(
            "- step: start\n  tool: {kind: noop}\n  next: [l]\n"
            '- step: l\n  loop: {in: "{{ missing }}", iterator: it}\n  tool: {kind: noop}\n'
        )
    )
    sim.complete(sim.take(), {})
    failed = sim.types("playbook.failed")
    assert (
        failed
        and failed[0]["error"].startswith("Orchestrator evaluate failed:")
        and "'l'" in failed[0]["error"]
    )
    assert sim.state.terminal == "FAILED" and not sim.pending


def test_sequential_loop_never_overlaps():
    sim = Sim(
        make_playbook(
            '- step: start\n  loop: {in: "{{ xs }}", iterator: x}\n  tool: {kind: noop}\n', "{xs: [1, 2, 3]}"
        )
    )
    seen = []
    while sim.pending:
        assert len(sim.pending) == 1
        cmd = sim.take()
        seen.append(cmd.meta["iteration_index"])
        sim.complete(cmd, {"x": cmd.context["input"]["x"]})
    assert seen == [0, 1, 2] and sim.state.terminal == "COMPLETED"
    assert sim.result("start")["results"] == [{"x": 1}, {"x": 2}, {"x": 3}]


def test_parallel_loop_ordered_aggregation_and_failure():
    sim = Sim(
        make_playbook(
            '- step: start\n  loop: {in: "{{ xs }}", iterator: x, spec: {mode: parallel}}\n'
            "  tool: {kind: noop}\n",
            "{xs: [1, 2, 3]}",
        )
    )
    c0, c1, c2 = sim.take(), sim.take(), sim.take()
    sim.complete(c2, {"i": 2})
    sim.complete(c0, {"i": 0})
    sim.complete(c1, {"i": 1})
    assert sim.result("start")["results"] == [{"i": 0}, {"i": 1}, {"i": 2}]
    sim2 = Sim(
        make_playbook(
            '- step: start\n  loop: {in: "{{ xs }}", iterator: x, spec: {mode: parallel,'
            " max_in_flight: 1}}\n  tool: {kind: noop}\n",
            "{xs: [1, 2, 3]}",
        )
    )
    sim2.fail(sim2.take())
    assert not sim2.pending and sim2.state.terminal == "FAILED"


def test_execution_id_string_and_workload_shallow_merge():
    pb = make_playbook(
        '- step: start\n  tool: {kind: python, input: {e: "{{ execution_id }}", '
        'c: "{{ cfg }}", j: "{{ job.id }}"}, code: x}\n',
        "{cfg: {a: 1, b: 2}}",
    )
    sim = Sim(pb, {"cfg": {"a": 9}})
    cmd = sim.take()
    assert cmd.context["input"]["e"] == "4242" or cmd.context["input"]["e"] == 4242
    assert cmd.context["render_context"]["execution_id"] == "4242"
    assert cmd.context["input"]["c"] == {"a": 9}


def test_command_and_issued_event_shapes():
    sim = Sim(
        make_playbook(
            '- step: start\n  tool: {kind: http, url: "{{ u }}", headers: '
            '{Authorization: "Bearer {{ keychain.tok.token }}"}}\n',
            "{u: 'http://x'}",
        )
    )
    cmd = sim.take()
    assert cmd.meta == {
        "command_id": cmd.command_id,
        "step": "start",
        "tool_kind": "http",
        "max_attempts": 3,
        "attempt": 1,
        "attempts": 1,
        "execution_id": "4242",
        "catalog_id": "7",
        "actionable": True,
    }
    tc = cmd.context["tool_config"]
    assert tc["url"] == "http://x" and tc["headers"]["Authorization"] == "Bearer {{ keychain.tok.token }}"
    rc = cmd.context["render_context"]
    assert rc["server_url"] == SERVER and rc["workload"] == {"u": "http://x"} and rc["catalog_id"] == "7"
    issued = sim.types("command.issued")[0]
    assert issued["event_id"] == cmd.event_id and issued["status"] == "PENDING"
    assert issued["node_type"] == "http" and issued["result"]["context"] == cmd.context
    assert issued["meta"]["command_id"] == cmd.command_id
    started = sim.rows[0]
    assert started["event_type"] == "playbook_started" and started["status"] == "STARTED"
    assert started["result"]["context"] == {
        "catalog_id": "7",
        "execution_id": "4242",
        "path": "tests/t",
        "version": 1,
        "workload": {"u": "http://x"},
    }


def test_duplicate_completion_ignored_and_legacy_command_id():
    sim = Sim(
        make_playbook("- step: start\n  tool: {kind: noop}\n  next: [b]\n- step: b\n  tool: {kind: noop}\n")
    )
    cmd = sim.take()
    d = sim.complete(cmd, {})
    assert [c.step for c in d.commands] == ["b"]
    again = sim.feed(sim._row(cmd, "command.completed", "COMPLETED", {"command_id": str(cmd.command_id)}))
    assert not again.events and not again.commands
    b = sim.take("b")
    legacy = f"4242:b:{b.event_id}"
    d = sim.feed(
        sim._row(
            b,
            "command.completed",
            "COMPLETED",
            {"command_id": legacy},
            command_id=None,
            meta={"command_id": legacy},
        )
    )
    assert d.terminal == "COMPLETED"


def test_cancelled_execution_records_but_never_orchestrates():
    sim = Sim(
        make_playbook("- step: start\n  tool: {kind: noop}\n  next: [b]\n- step: b\n  tool: {kind: noop}\n")
    )
    cmd = sim.take()
    sim.feed(
        {
            "event_id": sim.next_id(),
            "event_type": "execution.cancelled",
            "node_name": "cancel",
            "status": "CANCELLED",
            "result": None,
            "meta": {},
            "command_id": None,
        }
    )
    d = sim.complete(cmd, {})
    assert not d.commands and not d.events and sim.state.terminal == "CANCELLED"


def test_render_error_in_routing_fails_execution():
    sim = Sim(
        make_playbook(
            '- step: start\n  tool: {kind: noop}\n  next: {arcs: [{step: b, when: "{{ 1 / 0 }}"}]}\n'
            "- step: b\n  tool: {kind: noop}\n"
        )
    )
    d = sim.complete(sim.take(), {})
    assert d.terminal == "FAILED"
    assert d.events[-1].error.startswith("Orchestrator evaluate failed:")
    assert all(e.event_type != "step.exit" for e in d.events)


def test_admission_guard_skips_and_routes_on():
    sim = Sim(
        make_playbook(
            """\
        - step: start
          tool: {kind: noop}
          next: [guarded]
        - step: guarded
          when: "{{ workload.enabled }}"
          tool: {kind: noop}
          next: [after]
        - step: after
          tool: {kind: noop}
        """,
            "{enabled: false}",
        )
    )
    sim.complete(sim.take(), {})
    assert sim.state.steps["guarded"].status == "skipped"
    assert [c.step for c in sim.pending] == ["after"]
    assert sim.run() == "COMPLETED"


def test_parked_callback_step():
    sim = Sim(
        make_playbook(
            "- step: start\n  tool: {kind: container, image: x}\n  next: [b]\n"
            "- step: b\n  tool: {kind: noop}\n"
        )
    )
    cmd = sim.take()
    d = sim.feed(
        sim._row(
            cmd,
            "command.completed",
            "COMPLETED",
            {"command_id": str(cmd.command_id), "pending_callback": True},
        )
    )
    assert not d.events and sim.state.steps["start"].running
    d = sim.feed(
        sim._row(
            cmd,
            "call.done",
            "COMPLETED",
            {"command_id": str(cmd.command_id), "result": {"status": "ok", "context": {"k": 1}}},
        )
    )
    assert [c.step for c in d.commands] == ["b"] and sim.result("start") == {"k": 1}


def test_decide_does_not_mutate_input_state():
    sim = Sim(
        make_playbook("- step: start\n  tool: {kind: noop}\n  next: [b]\n- step: b\n  tool: {kind: noop}\n")
    )
    before = sim.state.to_dict()
    cmd = sim.take()
    row = sim._row(cmd, "command.completed", "COMPLETED", {"command_id": str(cmd.command_id)})
    decide(sim.pb, sim.state, row, server_url=SERVER, next_id=sim.next_id, now=NOW)
    assert sim.state.to_dict() == before
