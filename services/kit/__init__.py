"""What every service shares: settings, the app factory, errors, stores and the peer client."""

from . import telemetry
from .app import create_app, run
from .db import database_context, make_engine
from .identity import USER_TOKEN_HEADER, current_user_token, set_user_token
from .keys import DB, OPENAPI, PEERS, READINESS, REDIS, SETTINGS
from .peers import PeerClient, PeerReply, peers, peers_context
from .problems import Problem, problem_response
from .redis_store import redis_context
from .settings import Settings
from .validation import (
    IDEMPOTENCY_HEADER,
    USER_HEADER,
    Body,
    idempotency_key,
    int_query,
    read_json,
    user_id,
    validate,
)

__all__ = [
    "DB",
    "OPENAPI",
    "PEERS",
    "READINESS",
    "REDIS",
    "SETTINGS",
    "IDEMPOTENCY_HEADER",
    "USER_HEADER",
    "USER_TOKEN_HEADER",
    "current_user_token",
    "set_user_token",
    "Body",
    "PeerClient",
    "PeerReply",
    "Problem",
    "Settings",
    "create_app",
    "database_context",
    "idempotency_key",
    "int_query",
    "make_engine",
    "peers",
    "peers_context",
    "problem_response",
    "read_json",
    "redis_context",
    "run",
    "telemetry",
    "user_id",
    "validate",
]
