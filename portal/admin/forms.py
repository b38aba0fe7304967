"""Admin forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, SelectField, StringField, TimeField
from wtforms.fields import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from portal.auth.models import Role


class VendorForm(FlaskForm):
    name = StringField("Vendor name", validators=[DataRequired(), Length(min=2, max=120)])


class UserForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    full_name = StringField("Full name", validators=[Length(max=200)])
    role = SelectField("Role", choices=[SelectChoice(role.value, role.value.title()) for role in Role])
    vendor = SelectField("Vendor", choices=[SelectChoice("", "Internal (no vendor)")])


class WorkingHoursForm(FlaskForm):
    """A vendor's declared working hours; all three empty clears them."""

    work_start = TimeField("Work starts", validators=[Optional()])
    work_end = TimeField("Work ends", validators=[Optional()])
    work_timezone = StringField(
        "Time zone", validators=[Optional(), Length(max=64)], render_kw={"placeholder": "Europe/Berlin"}
    )
