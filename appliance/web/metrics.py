"""``GET /metrics``: the counter's Prometheus exposition, for a scraper holding the metrics token (docs/metrics.md)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from appliance.web.access import metrics_only

bp = Blueprint("metrics", __name__)


@bp.route("/metrics", methods=["GET"])
@metrics_only
def metrics():
    body, content_type = current_app.extensions["gatecheck"].metrics.render(request.headers.get("Accept"))
    # Read fresh at every scrape: no cache may answer for the device.
    return Response(body, content_type=content_type, headers={"Cache-Control": "no-store"})
