"""The counter's HTML forms (flask-wtf: every one carries a CSRF token).

The flag categories are a closed list on purpose: a report must land in a
category the registry's reviewers can judge, so there is no "other".
"""

from __future__ import annotations

import re

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import DateField, HiddenField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, Regexp, ValidationError

#: Closed list of incident categories for "flag a passenger" (code, label).
#: Air-travel conduct follows the kinds of unruly behaviour in ICAO Doc 10117
#: (Manual on the Legal Aspects of Unruly and Disruptive Passengers).
FLAG_CATEGORIES: tuple[tuple[str, str], ...] = (
    ("physical_assault", "Physical assault or attempted assault"),
    ("threat_or_verbal_abuse", "Threats or verbal abuse towards staff or travellers"),
    ("sexual_harassment", "Sexual harassment or assault"),
    ("crew_interference", "Interfering with crew or refusing safety instructions"),
    ("intoxication", "Disruptive intoxication"),
    ("property_damage", "Damage to aircraft, vehicle or premises"),
    ("smoking_on_board", "Smoking or vaping on board"),
    ("fraudulent_document", "Presented a document believed forged or not theirs"),
)

DOCUMENT_TYPES = (
    ("P", "Passport"),
    ("I", "National ID card"),
    ("D", "Driver licence"),
    ("V", "Visa"),
)

_COUNTRY = Regexp(r"^[A-Za-z]{3}$", message="three-letter country code, e.g. UTO, USA, CAN")
_FLIGHT = re.compile(r"^[A-Z0-9]{2}[A-Z]? ?[0-9]{1,4}[A-Z]?$")


def options(pairs) -> list[SelectChoice]:
    """(value, label) pairs as the <option>s of a SelectField."""
    return [SelectChoice(value, label) for value, label in pairs]


class SignInForm(FlaskForm):
    operator = StringField("Operator", validators=[DataRequired(), Length(max=64)])
    pin = PasswordField("PIN", validators=[DataRequired(), Length(min=4, max=32)])


class SignOutForm(FlaskForm):
    pass


class ManualEntryForm(FlaskForm):
    """A document typed in when no barcode or MRZ reads (channel "manual")."""

    document_class = SelectField("Document type", choices=options(DOCUMENT_TYPES), validators=[DataRequired()])
    issuing_country = StringField("Issuing country", validators=[DataRequired(), _COUNTRY])
    issuing_authority = StringField("State / province (licences)",
                                    validators=[Optional(), Regexp(r"^[A-Za-z0-9]{1,3}$",
                                                                   message="up to 3 letters, e.g. CA")])
    document_number = StringField("Document number", validators=[DataRequired(), Length(max=40)])
    surname = StringField("Surname", validators=[DataRequired(), Length(max=80)])
    given_names = StringField("Given names", validators=[Optional(), Length(max=120)])
    date_of_birth = DateField("Date of birth", validators=[DataRequired()])
    expiry_date = DateField("Expiry date", validators=[Optional()])

    def to_manual(self) -> dict:
        return {
            "document_class": self.document_class.data,
            "issuing_country": (self.issuing_country.data or "").upper(),
            "issuing_authority": (self.issuing_authority.data or "").upper() or None,
            "document_number": self.document_number.data,
            "surname": self.surname.data,
            "given_names": self.given_names.data or None,
            "date_of_birth": self.date_of_birth.data,
            "expiry_date": self.expiry_date.data,
        }


class ImageForm(FlaskForm):
    """A camera frame or photo of the document's barcode (channel "camera")."""

    image = FileField("Image of the barcode", validators=[FileRequired()])


class FlagForm(FlaskForm):
    """Flag a passenger: goes to the outbox, sent to the registry by the sync agent."""

    report_id = HiddenField(validators=[DataRequired()])
    scan_seq = HiddenField()
    category = SelectField("Category", choices=options([("", "Choose a category"), *FLAG_CATEGORIES]),
                           validators=[DataRequired(message="choose a category")])
    narrative = TextAreaField("What happened", validators=[
        DataRequired(), Length(min=20, max=4000, message="describe what happened (20 to 4000 characters)")])
    flight = StringField("Flight", validators=[DataRequired(), Length(max=9)])
    flight_date = DateField("Flight date", validators=[DataRequired()])
    surname = StringField("Surname", validators=[DataRequired(), Length(max=80)])
    given_names = StringField("Given names", validators=[Optional(), Length(max=120)])
    date_of_birth = DateField("Date of birth", validators=[Optional()])
    document_class = SelectField("Document type", choices=options([("", "—"), *DOCUMENT_TYPES]),
                                 validators=[Optional()])
    issuing_country = StringField("Issuing country", validators=[Optional(), _COUNTRY])
    document_number = StringField("Document number", validators=[Optional(), Length(max=40)])

    def validate_flight(self, field) -> None:
        value = (field.data or "").strip().upper()
        if not _FLIGHT.match(value):
            raise ValidationError("airline code and number, e.g. LH 863")
        field.data = value

    def to_report(self, operator: str) -> dict:
        """The outbox report body (plain JSON values)."""
        def iso(value):
            return value.isoformat() if value else None

        return {
            "kind": "incident",
            "category": self.category.data,
            "narrative": self.narrative.data.strip(),
            "flight": self.flight.data,
            "flight_date": iso(self.flight_date.data),
            "reporter": operator,
            "scan_seq": int(self.scan_seq.data) if (self.scan_seq.data or "").isdigit() else None,
            "passenger": {
                "surname": self.surname.data.strip(),
                "given_names": (self.given_names.data or "").strip() or None,
                "date_of_birth": iso(self.date_of_birth.data),
                "document_class": self.document_class.data or None,
                "issuing_country": (self.issuing_country.data or "").upper() or None,
                "document_number": (self.document_number.data or "").strip() or None,
            },
        }
