"""Errors a user can fix: shown as a panel by nerfstudio's own commands too, every other exception as before."""

from __future__ import annotations

import sys

from hypernerfgan_ns.errors import DatasetError, show_uncaught_errors_as_panels


def test_uncaught_errors_of_ours_print_their_panel_and_others_reach_the_previous_hook(monkeypatch, capsys) -> None:
    reached = []
    monkeypatch.setattr(sys, "excepthook", lambda kind, error, traceback: reached.append(error))
    show_uncaught_errors_as_panels()
    installed = sys.excepthook
    show_uncaught_errors_as_panels()  # the method registry may be loaded more than once: one hook, not a chain
    assert sys.excepthook is installed

    sys.excepthook(DatasetError, DatasetError("No images in /data/shoes: add some."), None)
    output = capsys.readouterr().out
    assert "DatasetError" in output and "No images in /data/shoes: add some." in output and not reached

    other = ValueError("not ours")
    sys.excepthook(ValueError, other, None)
    assert reached == [other]

