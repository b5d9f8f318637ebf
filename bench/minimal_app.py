"""R0: the least a Starlette webhook route can do (read the body, answer 200), the receiver's floor.

Same path shape and success body as the real Stripe route, so HTTP parsing, routing and response
writing cost the same; only verification, the envelope, publishing and the ack are missing.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

SUCCESS_BODY = b'{"received":true}'  # what the Stripe scheme answers


async def webhook(request: Request) -> Response:
    await request.body()
    return Response(SUCCESS_BODY, media_type="application/json")


def create_app() -> Starlette:
    return Starlette(routes=[Route("/webhooks/{endpoint}", webhook, methods=["POST"])])
