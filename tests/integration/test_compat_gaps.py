"""Docker-compatibility gaps left by issue 15, checked with the real docker CLI / docker-py
against dockerd 20.10's answers:

* ``docker ps --filter name=...``: moby's ``filters.Args.Match`` over ``"/" + name`` (an
  exact match or a regular expression found in it), so ``^/web$`` is one name; a value that
  is no valid expression matches nothing (dockerd answers 200 with ``[]``, not 400).
"""

from __future__ import annotations

import json
import secrets



def _ok(d, *args: str) -> str:
    r = d.docker(*args)
    assert r.returncode == 0, (args, r.stderr.decode())
    return r.stdout.decode().strip()


def test_ps_name_filter_is_a_regex_over_slash_name(d, client):
    base = f"gaps-{secrets.token_hex(3)}"
    exact = _ok(d, "create", "--network", "none", "--name", base, "busybox", "true")
    longer = _ok(d, "create", "--network", "none", "--name", base + "-2", "busybox", "true")

    def names(value: str) -> list[str]:
        out = _ok(d, "ps", "-a", "--no-trunc", "--format", "{{.ID}}", "--filter", f"name={value}")
        return sorted(out.split())

    assert names(f"^/{base}$") == [exact]
    assert names(f"{base}$") == [exact]
    assert names(f"/{base}") == sorted([exact, longer])
    assert names(base) == sorted([exact, longer])
    assert names(f"^{base}$") == []  # the name is matched with its leading "/"
    assert names(f"^/{base}-[0-9]$") == [longer]
    # an invalid expression matches nothing, and is no error (dockerd: 200 [])
    r = client.api._get(client.api._url("/containers/json"),
                        params={"all": 1, "filters": json.dumps({"name": ["(", f"^/{base}$"]})})
    assert r.status_code == 200, r.text
    assert [c["Id"] for c in r.json()] == [exact]
