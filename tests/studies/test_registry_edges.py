"""A user's study package ($QDSE_STUDY_PACKAGES) scanned for studies: a helper module beside the
studies (no NAME) is not a study. It was listed, so `python -m dse.study --list` printed the
studies before it and then failed with "unknown study 'helpers'; available: ..., helpers"."""

from __future__ import annotations

import textwrap

from dse.study import main, registry


def test_a_helper_module_is_not_listed(tmp_path, monkeypatch, capsys):
    pkg = tmp_path / "edge_studies"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "helpers.py").write_text("SCALE = 2\n")
    (pkg / "small.py").write_text(textwrap.dedent("""
        NAME = "small"
        TITLE = "a user's study"
        PARAMS = {}
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(registry.ENV_PACKAGES, "edge_studies")
    assert "small" in registry.names()
    assert "helpers" not in registry.names()
    assert main(["--list"]) == 0
    out = capsys.readouterr()
    assert "small" in out.out
    assert "helpers" not in out.out
    assert out.err == ""
