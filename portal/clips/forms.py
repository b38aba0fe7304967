"""Clip administration forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField
from wtforms.validators import DataRequired, Length


class EraseSubjectForm(FlaskForm):
    source_user_id = StringField(
        "Source user id", validators=[DataRequired(), Length(max=256)], render_kw={"autocomplete": "off"}
    )
    confirm = BooleanField("Verified request; this cannot be undone", validators=[DataRequired()])
