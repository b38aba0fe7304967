"""The application factory: extensions, blueprints, error handlers, hooks, CLI groups."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from portal.access import enforce_access, through_gates
from portal.admin.cli import nda_cli, users_cli, vendors_cli
from portal.admin.views import bp as admin_bp
from portal.analytics.cli import dashboard_cli
from portal.analytics.views import bp as analytics_bp
from portal.api.cli import apikeys_cli
from portal.api.views import bp as api_bp
from portal.audit.cli import audit_cli
from portal.audit.views import bp as audit_bp
from portal.auth.cookies import register_session_cookie
from portal.auth.views import bp as auth_bp
from portal.cli import db_cli, demo_command
from portal.clips.cli import clips_cli, subjects_cli
from portal.clips.views import bp as clips_bp
from portal.config import PROJECT_ROOT, load_config
from portal.errors import register_error_handlers
from portal.extensions import csrf, db, limiter, login_manager
from portal.headers import register_security_headers
from portal.home import bp as home_bp
from portal.keys import load_keys
from portal.nda.views import bp as nda_bp
from portal.outbox.cli import corrections_cli
from portal.playback.views import bp as playback_bp
from portal.review.views import bp as review_bp
from portal.tasks.views import bp as tasks_bp


def create_app(env: Mapping[str, str] | None = None) -> Flask:
    """Build the portal from `env` (default: the process environment)."""
    config = load_config(env)
    app = Flask(
        __name__,
        instance_path=str(config["INSTANCE_PATH"]),
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    app.config.update(config)
    keys = load_keys(app.config["KEYS_DIR"], app.config["GENERATE_MISSING_KEYS"], env)
    app.secret_key = keys.secret_key
    app.extensions["portal.keys"] = keys
    logging.basicConfig(
        level=app.config["LOG_LEVEL"], format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if app.config["PROXY_HOPS"]:
        hops = app.config["PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]

    db.init_app(app)
    login_manager.init_app(app)
    login_manager.session_protection = None
    csrf.init_app(app)
    limiter.init_app(app)

    for blueprint in (
        auth_bp,
        nda_bp,
        home_bp,
        admin_bp,
        clips_bp,
        api_bp,
        review_bp,
        tasks_bp,
        playback_bp,
        analytics_bp,
        audit_bp,
    ):
        app.register_blueprint(blueprint)
    csrf.exempt(api_bp)

    register_error_handlers(app)

    app.before_request(enforce_access)
    app.jinja_env.globals["through_gates"] = through_gates
    register_security_headers(app)
    register_session_cookie(app)

    for group in (
        db_cli,
        demo_command,
        vendors_cli,
        users_cli,
        nda_cli,
        audit_cli,
        apikeys_cli,
        clips_cli,
        subjects_cli,
        corrections_cli,
        dashboard_cli,
    ):
        app.cli.add_command(group)
    return app
