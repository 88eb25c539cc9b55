"""ASGI entry point: HTTP through Django, websockets through Channels with auth and origin
checks."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
# Django must be set up before anything imports models (the websocket routes do).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from dashboard.direct_send import DirectSendMiddleware  # noqa: E402
from dashboard.routing import websocket_urls  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # DirectSendMiddleware only exposes the unwrapped `send` for the board hub's fan-out.
        "websocket": DirectSendMiddleware(AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urls()))
        )),
    }
)
