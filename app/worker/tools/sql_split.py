"""Split a SQL script on top-level `;` (quotes, dollar-quoted bodies and comments respected)."""

from __future__ import annotations

import re

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


def split_statements(script: str) -> list[str]:
    """Statements of `script` in order; segments holding only whitespace and comments are dropped."""
    out: list[str] = []
    buf: list[str] = []
    meaningful = False
    i, n = 0, len(script)
    while i < n:
        c = script[i]
        nxt = script[i + 1] if i + 1 < n else ""
        if c == "-" and nxt == "-":
            end = script.find("\n", i)
            end = n if end < 0 else end
            buf.append(script[i:end])
            i = end
            continue
        if c == "/" and nxt == "*":
            # Postgres block comments nest.
            depth, j = 1, i + 2
            while j < n and depth:
                if script.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif script.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            buf.append(script[i:j])
            i = j
            continue
        if c in ("'", '"'):
            j = i + 1
            while j < n:
                if script[j] == c:
                    if j + 1 < n and script[j + 1] == c:  # doubled quote escapes itself
                        j += 2
                        continue
                    break
                if c == "'" and script[j] == "\\" and _escape_string(script, i):
                    j += 2
                    continue
                j += 1
            buf.append(script[i : j + 1])
            meaningful = True
            i = j + 1
            continue
        if c == "$":
            m = _DOLLAR_TAG.match(script, i)
            if m and not (i > 0 and (script[i - 1].isalnum() or script[i - 1] == "_")):
                tag = m.group(0)
                end = script.find(tag, m.end())
                end = n if end < 0 else end + len(tag)
                buf.append(script[i:end])
                meaningful = True
                i = end
                continue
        if c == ";":
            if meaningful:
                out.append("".join(buf).strip())
            buf, meaningful = [], False
            i += 1
            continue
        if not c.isspace():
            meaningful = True
        buf.append(c)
        i += 1
    if meaningful:
        out.append("".join(buf).strip())
    return out


def _escape_string(script: str, quote_at: int) -> bool:
    """True for an E'…' string, where backslash escapes the next character."""
    return (
        quote_at > 0 and script[quote_at - 1] in "eE" and (quote_at < 2 or not script[quote_at - 2].isalnum())
    )
