"""Templating: typed rendering, lenient undefined, filters, truthiness (dsl §3)."""

import pytest

from app.domain.templating import ResultDict, TemplateError, is_truthy, mentions, render_text, render_value

CTX = {
    "n": 3,
    "d": {"a": 1},
    "flag": True,
    "none": None,
    "s": "x",
    "r": ResultDict({"v": 2}),
    "h": ResultDict({"data": {"k": 1}, "status_code": 200}),
    "page": "3.0",
    "ctx": {"current_page": 2},
}


@pytest.mark.parametrize(
    ("tpl", "expected"),
    [
        ("{{ n }}", 3),
        ("{{ d }}", {"a": 1}),
        ("{{ flag }}", True),
        ("{{ none }}", None),
        ("plain", "plain"),
        ("n={{ n }}", "n=3"),
        ("{{ n }}{{ n }}", 33),
        ("[{{ n }}, 4]", [3, 4]),
        ("{{ d | tojson }}", '{"a":1}'),
        ("{{ (ctx.current_page | int) + 1 }}", 3),
        ("{{ page | int }}", 3),
        ("{{ nope }}", None),
        ("a{{ nope }}b", "ab"),
        ("x {{ none }} y", "x  y"),
        ("{{ flag }} text", "True text"),
        ("{{ 'true' }}", "true"),
        ("t{{ '' }}rue", True),
        ("{{ nope | default(5) }}", 5),
        ("{{ none | default(5) }}", 5),
        ("{{ none | d(6) }}", 6),
        ("{{ nope | tojson }}", "null"),
        ("{{ '{\"a\": 2}' | fromjson }}", {"a": 2}),
        ("{{ 'hi' | b64encode }}", "aGk="),
        ("{{ 'aGk=' | b64decode }}", "hi"),
        ("{{ d | keys }}", ["a"]),
        ("{{ d | values }}", [1]),
        ("{{ d | items }}", [["a", 1]]),
        ("{{ [1,2] | len }}", 2),
        ("{{ True and None is none }}", True),
        ("{{ r.data.v }}", 2),
        ("{{ r.v }}", 2),
        ("{{ h.data.k }}", 1),
        ("{{ nope is undefined }}", True),
        ("{{ d is mapping }}", True),
    ],
)
def test_typed_rendering(tpl, expected):
    assert render_value(tpl, CTX) == expected


def test_chainable_undefined_never_raises():
    assert render_value("{{ nope.a.b.c }}", CTX) is None
    assert render_value("{{ branch_a.category if branch_a else 'b' }}", CTX) == "b"
    assert render_value("{{ ctx.x | default(start.data.y) }}", CTX) is None
    assert render_value("{{ nope == nope }}", CTX) is False
    assert render_value("{{ nope > 3 }}", CTX) is False


def test_keys_rendered_and_recursive():
    assert render_value({"{{ s }}_k": ["{{ n }}", {"z": "{{ flag }}"}], "lit": 5}, CTX) == {
        "x_k": [3, {"z": True}],
        "lit": 5,
    }


def test_keychain_strings_stay_literal():
    tpl = "Bearer {{ keychain.tok.api_key }}"
    assert render_value({"h": tpl, "n": "{{ n }}"}, CTX) == {"h": tpl, "n": 3}
    assert mentions({"a": [tpl]}, "keychain")
    assert not mentions("{{ n }}", "keychain")


def test_sandbox_blocks_internals():
    with pytest.raises(TemplateError):
        render_text("{{ d.__class__.__mro__[1].__subclasses__() }}", CTX)
    with pytest.raises(TemplateError):
        render_value("{{ d.update({'b': 1}) }}", CTX)


def test_syntax_error_is_template_error():
    with pytest.raises(TemplateError) as ei:
        render_value("{{ n + }}", CTX)
    assert ei.value.template == "{{ n + }}"


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("{{ n > 2 }}", True),
        ("n > 2", True),
        ("{{ nope }}", False),
        (True, True),
        (False, False),
        ("{{ 'false' }}", False),
        ("{{ 'No' }}", False),
        ("{{ [] }}", False),
        ("{{ {} }}", False),
        ("{{ 0 }}", False),
        ("{{ s and 'req-123' }}", True),
        ("{{ none }}", False),
        ("{{ ' off ' }}", False),
    ],
)
def test_truthiness(expr, expected):
    assert is_truthy(expr, CTX) is expected
