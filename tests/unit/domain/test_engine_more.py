"""More engine behaviour: loops, re-entry, failure routing, worker event variants."""

from tests.unit.domain.helpers import Sim, make_playbook


def test_self_loop_reenters_until_guard_false():
    sim = Sim(
        make_playbook("""\
        - step: start
          tool: {kind: noop}
          set: {ctx.n: "{{ ctx.n | default(0) + 1 }}"}
          next:
            arcs:
              - {step: start, when: "{{ ctx.n < 3 }}"}
              - {step: done}
        - step: done
          tool: {kind: noop}
        """)
    )
    assert sim.run() == "COMPLETED"
    assert sim.state.vars["n"] == 3
    assert sim.state.steps["start"].generation == 3
    assert len(sim.types("step.enter", "done")) == 1


def test_loop_set_runs_once_and_max_in_flight_template():
    sim = Sim(
        make_playbook(
            """\
        - step: start
          loop: {in: "{{ xs }}", iterator: x, spec: {mode: parallel, max_in_flight: "{{ limit }}"}}
          tool: {kind: noop}
          set: {ctx.count: "{{ ctx.count | default(0) + 1 }}", ctx.n: "{{ start.stats.total }}"}
        """,
            "{xs: [1, 2, 3, 4, 5], limit: 2}",
        )
    )
    assert len(sim.pending) == 2
    assert sim.run() == "COMPLETED"
    assert sim.state.vars == {"count": 1, "n": 5}
    assert len(sim.types("ctx.updated")) == 1
    assert len(sim.types("loop.done", "start")) == 1


def test_reentered_loop_gets_fresh_instance_and_ignores_stragglers():
    sim = Sim(
        make_playbook("""\
        - step: start
          tool: {kind: noop}
          set: {ctx.round: "{{ ctx.round | default(0) + 1 }}"}
          next: [lp]
        - step: lp
          loop: {in: "{{ [ctx.round, ctx.round * 10] }}", iterator: x, spec: {mode: parallel}}
          tool: {kind: noop}
          next:
            arcs:
              - {step: start, when: "{{ ctx.round < 2 }}"}
              - {step: fin}
        - step: fin
          tool: {kind: python, input: {r: "{{ lp.results }}"}, code: x}
        """)
    )
    outputs = {"lp": lambda c: {"x": c.context["input"]["x"]}}
    assert sim.run(outputs) == "COMPLETED"
    enters = sim.types("step.enter", "lp")
    assert [e["result"]["context"]["collection"] for e in enters] == [[1, 10], [2, 20]]
    assert sim.result("lp")["results"] == [{"x": 2}, {"x": 20}]
    assert sim.types("command.issued", "fin")[0]["result"]["context"]["input"] == {"r": [{"x": 2}, {"x": 20}]}
    # a late duplicate from the first loop instance changes nothing
    first = next(c for c in sim.issued if c.step == "lp")
    d = sim.complete(first, {"x": 999})
    assert not d.events and sim.result("lp")["results"] == [{"x": 2}, {"x": 20}]


def test_failed_step_guarded_handler_after_unguarded_arc():
    sim = Sim(
        make_playbook("""\
        - step: start
          tool: {kind: noop}
          next:
            arcs:
              - {step: happy}
              - {step: handler, when: "{{ event.name == 'call.error' and error }}"}
        - step: happy
          tool: {kind: noop}
        - step: handler
          tool: {kind: noop}
        """)
    )
    sim.fail(sim.take(), "bad")
    assert [c.step for c in sim.pending] == ["handler"]
    assert sim.run() == "FAILED"
    assert sim.types("playbook.failed")[0]["error"] == "Failed steps: start"


def test_end_target_without_end_step_finishes_branch():
    sim = Sim(make_playbook("- step: start\n  tool: {kind: noop}\n  next: [end]\n"))
    d = sim.complete(sim.take(), {})
    assert d.terminal == "COMPLETED" and not d.commands


def test_end_runs_once_with_taken_inclusive_and_untaken_exclusive_upstreams():
    sim = Sim(
        make_playbook("""\
        - step: start
          tool: {kind: noop}
          next: {spec: {mode: inclusive}, arcs: [{step: a}, {step: b}, {step: router}]}
        - step: a
          tool: {kind: noop}
          next: [end]
        - step: b
          tool: {kind: noop}
          next: [end]
        - step: router
          tool: {kind: noop}
          next: {arcs: [{step: quiet, when: "{{ false }}"}]}
        - step: quiet
          tool: {kind: noop}
          next: [end]
        - step: end
          tool: {kind: noop}
        """)
    )
    assert sim.run() == "COMPLETED"
    assert len(sim.types("step.enter", "end")) == 1
    assert sim.state.steps["quiet"].status == "skipped"


def test_python_worker_full_batch_with_its_own_step_events():
    sim = Sim(
        make_playbook(
            "- step: start\n  tool: {kind: python, code: x}\n  next: [b]\n"
            "- step: b\n  tool: {kind: python, input: {v: '{{ start.v }}'}, code: x}\n"
        )
    )
    cmd = sim.take()
    cid = str(cmd.command_id)
    for row in (
        sim._row(cmd, "command.started", "STARTED", {"command_id": cid, "worker_id": "w"}),
        sim._row(cmd, "step.enter", "STARTED", {"status": "started"}),
        sim._row(cmd, "command.heartbeat", "RUNNING", {"command_id": cid}),
        sim._row(
            cmd,
            "call.done",
            "COMPLETED",
            {"response": {"v": 5}, "command_id": cid, "result": {"status": "COMPLETED", "context": {"v": 5}}},
        ),
        sim._row(
            cmd, "step.exit", "COMPLETED", {"status": "COMPLETED", "result": {"v": 5}, "command_id": cid}
        ),
    ):
        d = sim.feed(row)
        assert not d.events
    d = sim.feed(
        sim._row(
            cmd, "command.completed", "COMPLETED", {"command_id": cid, "worker_id": "w", "result": {"v": 5}}
        )
    )
    assert [c.step for c in d.commands] == ["b"] and d.commands[0].context["input"] == {"v": 5}
    assert sim.refold().to_dict() == sim.state.to_dict()


def test_call_done_alone_does_not_trigger_and_producer_status_error_fails():
    sim = Sim(
        make_playbook(
            "- step: start\n  tool: {kind: shell, cmds: [x]}\n  next: [b]\n- step: b\n  tool: {kind: noop}\n"
        )
    )
    cmd = sim.take()
    d = sim.feed(
        sim._row(
            cmd,
            "call.done",
            "COMPLETED",
            {"command_id": str(cmd.command_id), "result": {"status": "ok", "context": {"rc": 1}}},
        )
    )
    assert not d.events
    d = sim.feed(
        sim._row(
            cmd, "command.completed", "COMPLETED", {"command_id": str(cmd.command_id)}, producer="failure"
        )
    )
    assert d.terminal == "FAILED"


def test_workload_templates_are_not_rendered_twice():
    sim = Sim(
        make_playbook(
            "- step: start\n  tool: {kind: python, input: {m: '{{ message }}'}, code: x}\n",
            "{message: '{{ secret }}', secret: 's'}",
        )
    )
    assert sim.take().context["input"] == {"m": "{{ secret }}"}


def test_render_error_in_step_set_fails_execution():
    sim = Sim(
        make_playbook(
            "- step: start\n  tool: {kind: noop}\n  set: {ctx.x: '{{ start.v + none_at_all }}'}\n"
            "  next: [b]\n- step: b\n  tool: {kind: noop}\n"
        )
    )
    d = sim.complete(sim.take(), {"v": 1})
    assert d.terminal == "FAILED"
    assert d.events[-1].error.startswith("Orchestrator evaluate failed:")


def test_guard_skip_routing_to_end_stops_chain_and_completes():
    sim = Sim(make_playbook("- step: start\n  when: '{{ false }}'\n  tool: {kind: noop}\n  next: [end]\n"))
    assert sim.state.terminal == "COMPLETED"
    assert sim.state.steps["start"].status == "skipped" and not sim.pending


def test_loop_with_pipeline_body():
    sim = Sim(
        make_playbook("""\
        - step: start
          loop: {in: "{{ [1, 2] }}", iterator: x}
          tool:
            - {name: fetch, kind: http, url: "http://h/{{ x }}"}
            - {name: keep, kind: python, input: {d: "{{ fetch.data }}"}, code: x}
        """)
    )
    cmd = sim.take()
    assert cmd.tool_kind == "task_sequence"
    assert cmd.context["tool_config"]["tasks"][0]["url"] == "http://h/{{ x }}"
    assert cmd.context["render_context"]["x"] == 1
    sim.complete(cmd, {"fetch": {"data": 1}, "keep": {"k": 1}, "k": 1, "results": {}})
    sim.complete(sim.take(), {"k": 2})
    assert sim.state.terminal == "COMPLETED"
    assert [r["k"] for r in sim.result("start")["results"]] == [1, 2]


def test_admit_policy_rules_gate_dispatch():
    body = """\
        - step: start
          tool: {kind: noop}
          next: [gated]
        - step: gated
          spec:
            policy:
              admit:
                rules:
                  - when: "{{ sweeps | length <= 2 }}"
                    then: {allow: true}
                  - else: {then: {allow: false}}
          tool: {kind: noop}
        """
    sim = Sim(make_playbook(body, "{sweeps: [1, 2, 3]}"))
    assert sim.run() == "COMPLETED"
    assert sim.state.steps["gated"].status == "skipped"
    sim = Sim(make_playbook(body, "{sweeps: [1]}"))
    assert sim.run() == "COMPLETED"
    assert sim.state.steps["gated"].status == "completed"


def test_public_api_exports():
    import app.domain as d

    for name in ("parse_playbook", "start", "decide", "fold", "derive_status", "ExecutionState", "Decision"):
        assert hasattr(d, name)


def test_nested_set_keys_and_step_scope():
    sim = Sim(
        make_playbook("""\
        - step: start
          tool: {kind: noop}
          set: {ctx.cfg.depth: 2, step.flag: true, bare: "{{ start.v }}"}
          next: {arcs: [{step: b, when: "{{ ctx.cfg.depth == 2 and flag and bare == 1 }}"}]}
        - step: b
          tool: {kind: noop}
        """)
    )
    sim.complete(sim.take(), {"v": 1})
    assert [c.step for c in sim.pending] == ["b"]
    assert sim.state.vars == {"cfg": {"depth": 2}, "flag": True, "bare": 1}


def test_replay_and_start_failure_keeps_started_event():
    from app.domain import replay

    sim = Sim(
        make_playbook('- step: start\n  loop: {in: "{{ nothing }}", iterator: x}\n  tool: {kind: noop}\n')
    )
    assert [r["event_type"] for r in sim.rows] == ["playbook_started", "playbook.failed"]
    assert "'start'" in sim.rows[-1]["error"]
    ok = Sim(make_playbook("- step: start\n  tool: {kind: noop}\n"))
    ok.run()
    assert replay(reversed(ok.rows)).to_dict() == ok.state.to_dict()
