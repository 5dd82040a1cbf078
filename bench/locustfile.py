"""Load test (`make load`): many signed-in users reading, searching, filtering and moving deals.

Run only against a server on this machine (bench/load.sh starts gunicorn on 127.0.0.1 and runs
this headless for a fixed time). Every user shares one sign-in (done once at test start), so the
login rate limit is not what is measured. A move answered 409 (someone else moved the card since
this user read the board) is the correct answer of optimistic locking and counts as a success.
"""

from __future__ import annotations

import os
import random
import re

from locust import HttpUser, between, events, task

EMAIL = os.environ.get("LOAD_EMAIL", "admin-l@bench.example")
PASSWORD = os.environ.get("LOAD_PASSWORD", "bench-password")
CSRF_INPUT = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
CSRF_HEADER = re.compile(r'"X-CSRFToken": "([^"]+)"')
CARD = re.compile(r'data-deal-id="([0-9a-f-]{36})"\s+data-version="(\d+)"')
STAGE_OPTION = re.compile(r'<option value="([0-9a-f-]{36})"(?! data-lost)>')
WORDS = ["smith", "john", "wallace", "mart", "jonh smiht", "smiht", "acme", "renewal", "pilot", "ander", "lee"]
CONTACT_FILTERS = [
    "f=status.equals.customer",
    "f=city.contains.an&sort=last_activity",
    "f=tags.isEmpty&sort=email",
    "f=doNotContact.isTrue",
    "f=status.in.lead,prospect&match=any&f=name.startsWith.ma",
]
DEAL_FILTERS = ["f=status.equals.open", "f=value.greaterThan.50000", "f=name.contains.pilot&sort=value"]
SHARED: dict[str, object] = {}


@events.test_start.add_listener
def sign_in_once(environment, **_kwargs):
    import requests

    session = requests.Session()
    page = session.get(environment.host + "/login", timeout=10)
    token = CSRF_INPUT.search(page.text).group(1)
    response = session.post(
        environment.host + "/login", data={"csrf_token": token, "email": EMAIL, "password": PASSWORD}, timeout=10
    )
    response.raise_for_status()
    home = session.get(environment.host + "/", timeout=10)
    SHARED["cookies"] = session.cookies.get_dict()
    SHARED["csrf"] = CSRF_HEADER.search(home.text).group(1)


class CrmUser(HttpUser):
    wait_time = between(0.5, 2.0)

    def on_start(self):
        self.client.cookies.update(SHARED["cookies"])

    @task(4)
    def contact_list(self):
        self.client.get(f"/contacts?page={random.randint(1, 40)}", name="/contacts?page=N")

    @task(3)
    def contact_search(self):
        self.client.get(f"/contacts?q={random.choice(WORDS)}", name="/contacts?q=…")

    @task(3)
    def global_search(self):
        self.client.get(f"/search?q={random.choice(WORDS)}", name="/search?q=…", headers={"HX-Request": "true"})

    @task(2)
    def contact_filter(self):
        self.client.get(f"/contacts?{random.choice(CONTACT_FILTERS)}", name="/contacts?f=…")

    @task(2)
    def deal_filter(self):
        self.client.get(f"/deals?{random.choice(DEAL_FILTERS)}", name="/deals?f=…")

    @task(2)
    def dashboard(self):
        self.client.get("/", name="/")

    @task(1)
    def activities(self):
        self.client.get("/activities", name="/activities")

    @task(3)
    def board_and_move(self):
        board = self.client.get("/deals/board", name="/deals/board")
        cards = CARD.findall(board.text)
        stages = STAGE_OPTION.findall(board.text)
        if not cards or not stages:
            return
        deal_id, version = random.choice(cards)
        with self.client.post(
            f"/deals/{deal_id}/move",
            name="/deals/<id>/move",
            data={"stage_id": random.choice(stages), "version": version},
            headers={"X-CSRFToken": SHARED["csrf"], "HX-Request": "true"},
            catch_response=True,
        ) as response:
            if response.status_code in (200, 409):
                response.success()
