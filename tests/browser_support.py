"""What several browser tests do the same way on the board."""

from __future__ import annotations

import re

MOVE = re.compile(r"/deals/[0-9a-f-]+/move")


def drag_card(page, card, column) -> int:
    """Drag a board card with the mouse, in steps, from its amount onto the middle of `column`'s cards
    (their bottom edge can be the last card's when the cards fill the column); the move's status."""
    grab = card.locator(".amount").bounding_box()
    drop = column.locator(".board-cards").bounding_box()
    with page.expect_response(MOVE) as moved:
        page.mouse.move(grab["x"] + 5, grab["y"] + 5)
        page.mouse.down()
        page.mouse.move(grab["x"] + 30, grab["y"] + 30, steps=5)
        page.mouse.move(drop["x"] + drop["width"] / 2, drop["y"] + drop["height"] / 2, steps=15)
        page.mouse.up()
    return moved.value.status
