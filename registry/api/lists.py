"""Who is calling, and the lists with the categories a report may take: what an integration reads first."""

from __future__ import annotations

from registry.accounts import Role
from registry.api.operations import operation
from registry.api.schemas import ListsOut, Me
from registry.api.services import ui
from registry.reports import ReportError
from registry.web.access import api_user


@operation("GET", "/me", summary="The user this token belongs to", tag="lists", roles=list(Role), response=Me)
def me():
    user = api_user()
    return {"username": user.username, "display_name": user.display_name, "roles": sorted(user.roles),
            "orgs": sorted(user.orgs)}


@operation("GET", "/lists", summary="Lists, their versions and report categories", tag="lists", roles=list(Role),
           response=ListsOut)
def lists():
    """`categories` is the closed taxonomy a report on the list must use; empty where the list takes no
    reports (an authority's imported list)."""
    items = []
    for summary in ui().list_summaries():
        try:
            policy = ui().reports.policy(summary["list_id"])
        except ReportError:
            policy = None
        items.append({"list_id": summary["list_id"], "name": summary["name"], "authority": summary["authority"],
                      "version": summary["current_version"], "takes_reports": policy is not None,
                      "reviewers_required": policy.reviewers_required if policy else None,
                      "permanent_allowed": policy.permanent_allowed if policy else None,
                      "categories": [c.__dict__ for c in policy.categories] if policy else []})
    return {"items": items}
