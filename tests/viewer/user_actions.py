"""What the viewer does when a user acts on a control, without a browser (`test_viewer_in_browser.py` has one)."""

from __future__ import annotations

from typing import Any

from nerfstudio.viewer.viewer_elements import ViewerButton, ViewerParameter


def change(element: ViewerParameter[Any], value: Any) -> None:
    """A user edits a field: the element takes the value, then its callback runs."""
    element.value = value
    element.cb_hook(element)


def press(button: ViewerButton) -> None:
    """A user clicks a button."""
    button.cb_hook(button)
