"""Admin forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, SelectField, StringField
from wtforms.fields import SelectChoice
from wtforms.validators import DataRequired, Length

from portal.auth.models import Role


class VendorForm(FlaskForm):
    name = StringField("Vendor name", validators=[DataRequired(), Length(min=2, max=120)])


class UserForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    full_name = StringField("Full name", validators=[Length(max=200)])
    role = SelectField("Role", choices=[SelectChoice(role.value, role.value.title()) for role in Role])
    vendor = SelectField("Vendor", choices=[SelectChoice("", "Internal (no vendor)")])
