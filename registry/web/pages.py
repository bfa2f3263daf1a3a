"""The dashboard: what a signed-in user can see at a glance, by role."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user

from registry.accounts import Role
from registry.web.access import signed_in
from registry.web.auth import ui

bp = Blueprint("ui_pages", __name__, template_folder="templates", static_folder="static",
               static_url_path="/ui-static")


@bp.get("/")
@signed_in
def dashboard():
    services = ui()
    user = current_user.user
    lists = services.list_summaries()
    devices = services.devices.all_devices() if user.has_role(Role.IT_ADMIN) else None
    audit_head = services.audit.head() if user.has_role(Role.AUDITOR) else None
    return render_template("ui/dashboard.html", lists=lists, devices=devices, audit_head=audit_head)
