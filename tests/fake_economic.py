"""e-conomic faked at the HTTP boundary (`responses`), in the shapes of its documentation: the VAT setup of a Danish
agreement (the same as the sandbox's), collections, products with their group. For tests that need one answer
e-conomic gives (an error, a 404 on a booked draft); the flows run against the strict sandbox."""

import json
from urllib.parse import parse_qs, urlparse

import responses

API = "https://restapi.e-conomic.com"
ZONES = {1: "Domestic", 2: "EU", 3: "Abroad", 4: "Domestic exempt"}
# product group -> (name, VAT code of its sales account per VAT zone)
GROUPS: dict[int, tuple[str, dict[int, str | None]]] = {
    1: ("Varer m/moms", {1: "U25", 2: None, 3: None, 4: None}),
    2: ("Varer u/moms", {1: None, 2: None, 3: None, 4: None}),
    3: ("Salgsskat (udenlandsk)", {1: None, 2: None, 3: None, 4: None}),
}


def collection(items: list, api: str = API, path: str = "") -> dict:
    return {
        "collection": items,
        "pagination": {"skipPages": 0, "pageSize": 1000, "results": len(items), "firstPage": f"{api}/{path}"},
        "self": f"{api}/{path}",
    }


def chart(api: str = API) -> None:
    """The agreement's VAT zones, VAT accounts and product groups with their sales accounts."""
    zones = [{"vatZoneNumber": n, "name": name, "enabledForCustomer": True} for n, name in ZONES.items()]
    responses.get(f"{api}/vat-zones", json=collection(zones, api, "vat-zones"))
    vat = [{"vatCode": "U25", "name": "Udgående moms", "ratePercentage": 25}]
    responses.get(f"{api}/vat-accounts", json=collection(vat, api, "vat-accounts"))
    groups = [{"productGroupNumber": n, "name": name} for n, (name, _) in GROUPS.items()]
    responses.get(f"{api}/product-groups", json=collection(groups, api, "product-groups"))
    for number, (_, codes) in GROUPS.items():
        entries = [
            {
                "salesAccount": {
                    "accountNumber": 1000 + 10 * zone,
                    "name": f"Salg zone {zone}",
                    **({"vatAccount": {"vatCode": code}} if code else {}),
                },
                "vatZone": {"vatZoneNumber": zone, "name": ZONES[zone]},
            }
            for zone, code in codes.items()
        ]
        responses.get(f"{api}/product-groups/{number}/sales-accounts", json=collection(entries, api))


def products(groups: dict[str, int], api: str = API) -> None:
    """Products that exist, each in its product group: one by one, and found by `productNumber$eq:` filters joined
    with `$or:` (numbers without characters to escape)."""

    def product(number: str) -> dict:
        return {"productNumber": number, "name": number, "productGroup": {"productGroupNumber": groups[number]}}

    def search(request):
        wanted = parse_qs(urlparse(request.url).query)["filter"][0]
        numbers = [term.removeprefix("productNumber$eq:") for term in wanted.split("$or:")]
        found = [product(number) for number in numbers if number in groups]
        return 200, {}, json.dumps(collection(found, api, "products"))

    responses.add_callback(responses.GET, f"{api}/products", callback=search)
    for number in groups:
        responses.get(f"{api}/products/{number}", json=product(number))
