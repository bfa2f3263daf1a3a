"""``GET /metrics``: the registry's Prometheus exposition (docs/metrics.md).

For the data directory's scrape-only ``metrics-token`` (what a Prometheus
server should hold: it opens nothing else) or an IT admin's API token.
Authenticated like the JSON API (registry/web/access.py, ``API_BLUEPRINTS``):
the bearer token alone, never a session, so a page open in an IT admin's
browser cannot be made to leak it. An IT admin scoped to organisations sees
only those organisations' devices, as on the fleet pages; lists are visible
to every role, so their series are always there.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from sqlalchemy import select

from registry.accounts import Role
from registry.api import errors
from registry.db import RegistryError
from registry.devices import device_of, devices, lists_of
from registry.metrics import DeviceRow, RegistryCollector, list_rows
from registry.web.access import api_user, roles_required, scrape_token_accepted
from registry.web.device_pages import SILENT_AFTER_SECONDS

bp = Blueprint("metrics", __name__)
bp.register_error_handler(RegistryError, errors.registry_error)  # 401/403 as JSON, with WWW-Authenticate
bp.register_error_handler(Exception, errors.internal_error)


def _device_rows() -> list[DeviceRow]:
    user = api_user()
    orgs = user.orgs if user is not None else ()  # the scrape-only token sees the whole fleet
    query = select(devices).order_by(devices.c.device_id)
    if orgs:
        query = query.where(devices.c.org.in_(sorted(orgs)))
    with current_app.extensions["gatecheck_ui"].engine.connect() as conn:
        rows = conn.execute(query).all()
        subscribed = lists_of(conn, None)
    return [DeviceRow(device_of(row, tuple(subscribed.get(row.device_id, ()))), row.health) for row in rows]


@bp.get("/metrics")
@roles_required(Role.IT_ADMIN)
@scrape_token_accepted
def metrics():
    ui = current_app.extensions["gatecheck_ui"]
    registry = CollectorRegistry()
    registry.register(RegistryCollector(
        list_rows(ui.list_summaries()), _device_rows(),
        now=current_app.extensions["gatecheck_registry"].clock(),
        silent_after=current_app.config.get("DEVICE_SILENT_SECONDS", SILENT_AFTER_SECONDS)))
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encode(registry), content_type=content_type, headers={"Cache-Control": "no-store"})
