"""PlainItems: a group's items without attributes of their own, kept as the rows the decision log stores."""

from __future__ import annotations

import json
import pickle

from policy_engine.audit import PLAIN_ITEM_ATTRIBUTES, GroupItem, PlainItems
from policy_engine.audit.records import stored_items_json


def rows(count: int) -> list[tuple[str, str, str, bool, str, str, str, str]]:
    return [(f"{n + 1:08x}", "invoke", f"tool:t{n}", n % 3 != 0, "p, role:user, tool:*, invoke" if n % 3 else "",
             "matched" if n % 3 else "no rule allows it", "", "") for n in range(count)]


def test_items_read_as_group_items_before_and_after_crossing_a_process_boundary() -> None:
    items = PlainItems(rows(10))
    crossed = pickle.loads(pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL))
    for each in (items, crossed):
        assert len(each) == 10 and each.first_suffix == "00000001" and each.all_allowed is False
        assert each[4] == GroupItem("00000005", "invoke", "tool:t4", True, "p, role:user, tool:*, invoke",
                                    "matched", "", PLAIN_ITEM_ATTRIBUTES)
        assert list(each) == [GroupItem(*row[:7], PLAIN_ITEM_ATTRIBUTES) for row in rows(10)]
        cut = each[:4]
        assert type(cut) is PlainItems and len(cut) == 4 and cut.first_suffix == "00000001"
        assert json.loads(cut.text) == [list(row) for row in rows(4)]
    assert json.loads(crossed.text) == json.loads(items.text) == [list(row) for row in rows(10)]
    assert PlainItems(rows(10)[1:3]).all_allowed is True


def test_the_stored_text_is_json_even_for_texts_orjson_refuses() -> None:
    """A lone surrogate (possible in a verified token's claims) is encoded as the standard
    library encodes it, instead of failing the group."""
    odd = [("00000001", "invoke", "tool:\ud800x", True, "", "matched", "", "")]
    assert json.loads(stored_items_json(odd)) == [list(odd[0])]
    assert json.loads(PlainItems(odd).text)[0][2] == "tool:\ud800x"
