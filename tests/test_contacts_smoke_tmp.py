from tests import factories
from tests.conftest import HX

def test_smoke(app, client, org, users, login, count_queries):
    login("sales")
    tag = factories.make_tag(org, name="VIP")
    co = factories.make_company(org, name="Acme")
    for i in range(3):
        factories.make_contact(org, first_name="John", last_name=f"Smith{i}", primary_company_id=co.id, owner_id=users["sales"].id)
    r = client.get("/contacts")
    assert r.status_code == 200, r.text[:3000]
    r = client.get("/contacts?q=smith&f=name.contains.john&per_page=10", headers=HX)
    assert r.status_code == 200, r.text[:3000]
    print(r.headers.get("HX-Push-Url"))
    r = client.get("/contacts?field=name&op=bogus&value=x", headers=HX)
    print(r.status_code, r.headers, r.text[:1500])
    c = factories.make_contact(org, first_name="Ann")
    r = client.get(f"/contacts/{c.id}")
    assert r.status_code == 200, r.text[:3000]
    r = client.get("/contacts/new")
    assert r.status_code == 200, r.text[:3000]
    r = client.get("/contacts/export.csv?q=smith")
    print(r.text)
    r = client.get("/search?q=smi", headers=HX)
    print(r.text)
