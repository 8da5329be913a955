"""Flask extensions, created here and bound to the app in create_app."""

from __future__ import annotations

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf import CSRFProtect

csrf = CSRFProtect()
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Please sign in to continue."
# In-process counters by default; MDFLEDGER_RATELIMIT_STORAGE_URL (e.g. redis://) in production.
limiter = Limiter(key_func=get_remote_address, default_limits=[])
