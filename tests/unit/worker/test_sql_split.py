"""Splitting SQL scripts on top-level semicolons."""

from __future__ import annotations

import pytest

from app.worker.tools.sql_split import split_statements

pytestmark = pytest.mark.unit


def test_plain_statements_and_trailing_semicolon() -> None:
    assert split_statements("SELECT 1; SELECT 2;") == ["SELECT 1", "SELECT 2"]


def test_comment_only_segments_are_dropped() -> None:
    assert split_statements("SELECT 1;\n-- done;\n  ;\n/* x; y */") == ["SELECT 1"]


def test_quotes_and_identifiers_keep_semicolons() -> None:
    sql = "INSERT INTO t VALUES ('a;b', 'it''s;'); SELECT \"we;ird\" FROM t"
    assert split_statements(sql) == ["INSERT INTO t VALUES ('a;b', 'it''s;')", 'SELECT "we;ird" FROM t']


def test_escape_string_backslash() -> None:
    assert split_statements(r"SELECT E'a\';b'; SELECT 2") == [r"SELECT E'a\';b'", "SELECT 2"]


def test_dollar_bodies_keep_semicolons() -> None:
    fn = "CREATE FUNCTION f() RETURNS int AS $$ BEGIN RETURN 1; END; $$ LANGUAGE plpgsql"
    tagged = "DO $body$ BEGIN PERFORM 1; END $body$"
    assert split_statements(f"{fn};\n{tagged};SELECT f()") == [fn, tagged, "SELECT f()"]


def test_line_comment_hides_semicolon_and_quote() -> None:
    assert split_statements("SELECT 1 -- it's; fine\n, 2; SELECT 3") == [
        "SELECT 1 -- it's; fine\n, 2",
        "SELECT 3",
    ]


def test_positional_parameter_is_not_a_dollar_quote() -> None:
    assert split_statements("SELECT $1::int; SELECT $2") == ["SELECT $1::int", "SELECT $2"]


def test_nested_block_comment() -> None:
    assert split_statements("/* a /* b; */ c; */ SELECT 1") == ["/* a /* b; */ c; */ SELECT 1"]
