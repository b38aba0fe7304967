"""The NDA acceptance form (fields `full_name`, `accept` per DESIGN.md) and the publish form."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length


class AcceptNdaForm(FlaskForm):
    version = HiddenField()
    full_name = StringField(
        "Your full name",
        validators=[DataRequired(), Length(min=2, max=200)],
        render_kw={"autocomplete": "name"},
    )
    accept = BooleanField("I have read this agreement and accept it.", validators=[DataRequired()])


class PublishNdaForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired(), Length(max=200)])
    body = TextAreaField("Text", validators=[DataRequired(), Length(max=200_000)])
