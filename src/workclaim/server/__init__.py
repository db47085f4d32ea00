"""The HTTP service (`workclaim serve`): FastAPI on uvicorn, needs the `server` extra.

from workclaim.server import create_app, ServerConfig
"""

from workclaim.server.app import create_app
from workclaim.server.config import ServerConfig

__all__ = ["ServerConfig", "create_app"]
