"""ASGI entry point: HTTP through Django (one thread hop per request), websockets through
Channels with auth and origin checks."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
# Django must be set up before anything imports models (the websocket routes do).
django.setup(set_prefix=False)

from django.conf import settings  # noqa: E402

from dashboard.threaded_http import ThreadedASGIHandler  # noqa: E402

django_asgi_app = ThreadedASGIHandler(threads=settings.HTTP_THREADS)

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
