"""Property tests: arrival-order independence of fan-in, and fold-from-scratch == incremental state."""

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.domain.helpers import Sim, make_playbook

BRANCHES = """\
- step: start
  tool: {kind: noop}
  next: {spec: {mode: inclusive}, arcs: [{step: a}, {step: b}, {step: c}]}
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
  tool: {kind: python, input: {x: "{{ a.v + b.v + c.v }}"}, code: x}
"""
PB = make_playbook(BRANCHES)


def _signature(sim):
    return sorted(
        (r["event_type"], r["node_name"])
        for r in sim.rows
        if r["meta"] and r["meta"].get("emitter") == "control_plane"
    )


@settings(max_examples=60, deadline=None)
@given(st.permutations(["a", "b", "c"]))
def test_parallel_branch_arrival_order_is_irrelevant(order):
    sim = Sim(PB)
    sim.complete(sim.take(), {})
    cmds = {c.step: c for c in list(sim.pending)}
    sim.pending.clear()
    joins = 0
    for name in order:
        d = sim.complete(cmds[name], {"v": ord(name)})
        joins += sum(1 for c in d.commands if c.step == "join")
    assert joins == 1
    join = sim.take("join")
    assert join.context["input"] == {"x": ord("a") + ord("b") + ord("c")}
    sim.complete(join, {})
    assert sim.state.terminal == "COMPLETED"
    ref = Sim(PB)
    ref.run({"a": {"v": 97}, "b": {"v": 98}, "c": {"v": 99}})
    assert _signature(sim) == _signature(ref)


LOOPY = """\
- step: start
  tool: {kind: noop}
  set: {ctx.n: 0}
  next: {spec: {mode: inclusive}, arcs: [{step: items}, {step: side}]}
- step: items
  loop: {in: "{{ xs }}", iterator: x, spec: {mode: parallel, max_in_flight: 2}}
  tool: [{name: t, kind: noop}]
  next: [count]
- step: side
  tool: {kind: noop}
  next: [end]
- step: count
  tool: {kind: noop}
  set: {ctx.n: "{{ ctx.n + 1 }}"}
  next:
    arcs:
      - {step: items, when: "{{ ctx.n < 2 }}"}
      - {step: end}
- step: end
  tool: {kind: noop}
"""
PB2 = make_playbook(LOOPY, "{xs: [1, 2, 3]}")


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=60),
    st.lists(st.booleans(), min_size=1, max_size=60),
)
def test_refold_equals_incremental_state(picks, failures):
    sim = Sim(PB2)
    i = 0
    while sim.pending and not sim.state.terminal and i < 200:
        cmd = sim.pending.pop(picks[i % len(picks)] % len(sim.pending))
        if failures[i % len(failures)] and i % 7 == 3:
            sim.fail(cmd, "x")
        else:
            sim.complete(cmd, {"i": i}, worker=("project", "python", "rust")[i % 3])
        i += 1
        assert sim.refold().to_dict() == sim.state.to_dict()
    if not sim.pending:
        assert sim.state.terminal in ("COMPLETED", "FAILED")


def test_state_json_roundtrip_and_decide_from_restored_state():
    import json

    from app.domain.state import ExecutionState

    sim = Sim(PB2)
    for _ in range(5):
        sim.complete(sim.take(), {"i": 1})
    restored = ExecutionState.from_dict(json.loads(json.dumps(sim.state.to_dict())))
    assert restored.to_dict() == sim.state.to_dict()
    sim.state = restored
    assert sim.run() == "COMPLETED"
    assert sim.refold().to_dict() == sim.state.to_dict()
