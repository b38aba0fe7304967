"""Review forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import RadioField, TextAreaField
from wtforms.fields import SelectChoice
from wtforms.validators import InputRequired, Length

from portal.review.services import Decision

FEEDBACK_MAX = 4000


class DecisionForm(FlaskForm):
    """`decision` (accept|reject) and `feedback`, the names of DESIGN.md's stable interface.

    The page sends `decision` with one of two submit buttons; feedback being required for
    a rejection is a rule of the service, not of the form.
    """

    decision = RadioField(
        "Decision",
        choices=[
            SelectChoice(Decision.ACCEPT.value, "Accept"),
            SelectChoice(Decision.REJECT.value, "Reject"),
        ],
        validators=[InputRequired(message="Choose accept or reject.")],
    )
    feedback = TextAreaField(
        "Feedback for the annotator",
        validators=[Length(max=FEEDBACK_MAX)],
        render_kw={"rows": 4, "maxlength": FEEDBACK_MAX},
    )
