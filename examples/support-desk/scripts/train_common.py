"""Shared pieces of the train-split generator: the example builder and customer places."""

from __future__ import annotations

from typing import Any

REFUSE = "I'm sorry, I can't help with that."

EU_PLACES = [
    ("Rotterdam", "the Netherlands"), ("Leipzig", "Germany"), ("Graz", "Austria"),
    ("Antwerp", "Belgium"), ("Toulouse", "France"), ("Bologna", "Italy"), ("Zaragoza", "Spain"),
    ("Gdansk", "Poland"), ("Tampere", "Finland"), ("Cork", "Ireland"), ("Porto", "Portugal"),
    ("Aarhus", "Denmark"), ("Brno", "Czechia"), ("Luxembourg City", "Luxembourg"),
]
US_PLACES = [
    ("Tucson", "Arizona"), ("Boise", "Idaho"), ("Raleigh", "North Carolina"),
    ("Omaha", "Nebraska"), ("Spokane", "Washington"), ("Albany", "New York"),
    ("Savannah", "Georgia"), ("Des Moines", "Iowa"), ("Louisville", "Kentucky"),
    ("Portland", "Maine"), ("Fresno", "California"), ("Madison", "Wisconsin"),
]
HARDWARE = {
    "router": ["Arc R6 router", "Arc R6 satellite", "Arc R6 mesh 3-pack"],
    "thermostat": ["Ember T2 thermostat", "Ember room sensor"],
}


def ex(category: str, question: str | None, reference: str, sources: list[str], must: list[str], *,
       product: str, intent: str, juris: str | None = None, refuse: bool = False,
       tags: tuple[str, ...] = (), messages: list[dict[str, str]] | None = None,
       schema: str | None = None, **meta: Any) -> dict[str, Any]:
    """One example in the same shape as an eval case (id is assigned later)."""
    all_tags = [category, *tags]
    if product != "all":
        all_tags.append(f"product:{product}")
    if juris:
        all_tags.append(f"jurisdiction:{juris}")
    metadata: dict[str, Any] = {"must_include": list(must), "intent": intent}
    if juris:
        metadata["jurisdiction"] = juris
    metadata["product"] = product
    metadata.update(meta)
    out: dict[str, Any] = {"id": ""}
    if messages is not None:
        out["messages"] = messages
    else:
        out["input"] = question
    out.update({"reference": reference, "should_refuse": refuse, "sources": list(sources),
                "tags": all_tags, "metadata": metadata})
    if schema:
        out["schema"] = schema
    return out
