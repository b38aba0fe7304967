"""The work page's forms: submit, skip and report a problem."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, RadioField, TextAreaField
from wtforms.fields import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, ValidationError

from portal.tasks.models import ProblemKind
from portal.tasks.services import MAX_NOTE_CHARS, MAX_TRANSCRIPT_CHARS, QuarantineDecision, SkipReason

SKIP_CHOICES = [
    SelectChoice(SkipReason.KNOW_SPEAKER.value, "I know or may know the speaker"),
    SelectChoice(SkipReason.CANNOT_HEAR.value, "I cannot play or hear it properly"),
    SelectChoice(SkipReason.WRONG_LANGUAGE.value, "It is not in a language I work in"),
    SelectChoice(SkipReason.OTHER.value, "Another reason"),
]

PROBLEM_CHOICES = [
    SelectChoice(
        ProblemKind.PII_MISSED.value, "Personal details were not removed (a name, number, address…)"
    ),
    SelectChoice(ProblemKind.UNINTELLIGIBLE.value, "The recording is unintelligible"),
    SelectChoice(ProblemKind.WRONG_LANGUAGE.value, "The recording is in the wrong language"),
    SelectChoice(ProblemKind.OTHER.value, "Something else is wrong with it"),
]


class SubmitForm(FlaskForm):
    transcript = TextAreaField(
        "Your transcript",
        validators=[DataRequired("Type the transcript before submitting."), Length(max=MAX_TRANSCRIPT_CHARS)],
        render_kw={"spellcheck": "true", "autocomplete": "off", "rows": 7},
    )
    lease_id = HiddenField(validators=[InputRequired()])


class SkipForm(FlaskForm):
    reason = RadioField("Why are you skipping this task?", choices=SKIP_CHOICES, validators=[InputRequired()])


class ReportForm(FlaskForm):
    kind = RadioField("What is wrong with this clip?", choices=PROBLEM_CHOICES, validators=[InputRequired()])
    note = TextAreaField(
        "Note for the administrator (optional; do not repeat personal details)",
        validators=[Length(max=MAX_NOTE_CHARS)],
        render_kw={"rows": 3},
    )


class QuarantineDecisionForm(FlaskForm):
    decision = RadioField(
        "Decision",
        choices=[
            SelectChoice(
                QuarantineDecision.RELEASE.value, "Release: the clip is fine, put it back into service"
            ),
            SelectChoice(
                QuarantineDecision.ERASE.value, "Erase: destroy the audio and transcript; cancel its tasks"
            ),
        ],
        validators=[InputRequired("Choose release or erase.")],
    )
    confirm = BooleanField("I have checked the report(s); this decision is recorded in the audit log")

    def validate_confirm(self, field: BooleanField) -> None:
        if self.decision.data == QuarantineDecision.ERASE.value and not field.data:
            raise ValidationError("Tick the box to confirm: erasing cannot be undone.")
