"""The registry's forms (flask-wtf: every POST carries a CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    FileField,
    IntegerField,
    MultipleFileField,
    PasswordField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp

from appliance.web.forms import options


class LoginForm(FlaskForm):
    username = StringField("User name", validators=[DataRequired(), Length(max=64)],
                           render_kw={"autocomplete": "username", "autofocus": True})
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)],
                             render_kw={"autocomplete": "current-password"})


class LogoutForm(FlaskForm):
    """Signing out is a POST with a CSRF token, so a link on another site cannot do it."""


DOCUMENT_CLASSES = (("", "—"), ("P", "Passport"), ("I", "National ID card"), ("D", "Driver licence"), ("V", "Visa"))


class ReportForm(FlaskForm):
    """A report: the traveller from a pasted scan or typed fields, the trip, what happened, evidence.

    The list and category choices are set per request from the lists that
    take reports (their closed taxonomies), so there is no free-text category.
    """

    list_category = SelectField("List and category", validators=[DataRequired()])
    scan = TextAreaField("Scanned document (paste the barcode or MRZ text)", validators=[Optional(), Length(max=16384)],
                         render_kw={"rows": 4, "spellcheck": "false"})
    scan_file = FileField("Or upload the scan: the scanner's output as a file, or a photo of the barcode "
                          "(PNG or JPEG)")
    surnames = StringField("Surname(s)", validators=[Optional(), Length(max=120)])
    given_names = StringField("Given names", validators=[Optional(), Length(max=120)])
    date_of_birth = DateField("Date of birth", validators=[Optional()])
    document_class = SelectField("Document type", choices=options(DOCUMENT_CLASSES), validators=[Optional()])
    issuer = StringField("Issuing country (3 letters)", validators=[Optional(), Regexp(r"^[A-Za-z]{3}(-[A-Za-z0-9]{1,3})?$",
                                                                                      message="e.g. DEU, or USA-CA")])
    document_number = StringField("Document number", validators=[Optional(), Length(max=40)])
    trip = StringField("Flight or stay", validators=[DataRequired(), Length(max=120)],
                       description="e.g. DA 123 FRA-LIS, or Hotel Lisboa room 512")
    trip_date = DateField("Date of the flight or stay", validators=[DataRequired()])
    narrative = TextAreaField("What happened", validators=[DataRequired(), Length(max=10_000)], render_kw={"rows": 8})
    evidence = MultipleFileField("Evidence (PDF, PNG or JPEG, up to 5 files of 5 MiB)")


class AcceptForm(FlaskForm):
    days = IntegerField("Term in days (empty: the category's default)", validators=[Optional(), NumberRange(min=1)])
    permanent = BooleanField("Permanent (only where the list's policy allows it)")
    reason = TextAreaField("Reason", validators=[Optional(), Length(max=2000)], render_kw={"rows": 2})


class CategoriseForm(FlaskForm):
    """A counter's report came as triage: the reviewer picks the list's category before deciding."""

    category = SelectField("Category on this list", validators=[DataRequired()])
    reason = StringField("Why this category (optional; the audit log keeps it)", validators=[Optional(), Length(max=500)])


class RejectForm(FlaskForm):
    reason = TextAreaField("Reason the reporter will read", validators=[DataRequired(), Length(min=5, max=2000)],
                           render_kw={"rows": 2})
