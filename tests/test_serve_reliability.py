"""``ddnsr serve`` under misuse and failure (issue 26, the page's items): one-line errors, upload limits
counted as bytes arrive, the results zip, cancel inside a tile, SIGTERM during a job, non-ASCII names,
the hosts it trusts, stale private folders, and the per-start token."""

from __future__ import annotations

import pytest

pytest.importorskip("flask")

from test_serve_api import H, make, photo, upload, wait  # noqa: E402, F401  (photo: a fixture)


@pytest.mark.parametrize("flag", ["--model typo", "--run {tmp}", "--model {tmp}/passwd"])
def test_bad_serve_settings_are_one_line_errors(flag, tmp_path, capsys):
    """Issue 26 item 7: ValueError tracebacks became one line naming the setting (exit 1)."""
    from ddnsr.cli import main

    (tmp_path / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    args = flag.format(tmp=tmp_path).split()
    assert main(["serve", *args, "--port", "0"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"ddnsr serve: error: {args[0]} {args[1]}: "), err
