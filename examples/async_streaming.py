"""Stream a routed answer with asyncio.

    python examples/async_streaming.py --local
    python examples/async_streaming.py --api-base http://127.0.0.1:8000/v1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from importlib import resources

from smartllm import Client

POOL = ["openai/gpt-4o-mini", "openai/gpt-4o"]


async def main(api_base: str, router: str | None) -> None:
    client = Client(
        models={name: {"api_base": api_base, "api_key": os.environ.get("OPENAI_API_KEY", "none")}
                for name in POOL},
        router=router,
    )
    stream = await client.acomplete(
        "Explain how a hash map handles collisions.", willingness_to_pay=0.05, stream=True
    )
    async for piece in stream:
        print(piece, end="", flush=True)
    print(f"\n[{stream.model}, ${stream.cost:.6f}, request {stream.request_id}]")


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--api-base", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
parser.add_argument("--local", action="store_true", help="start the local test server")
args = parser.parse_args()

server = None
if args.local:
    from smartllm.testing import OpenAIServer

    server = OpenAIServer(answers={"*": "Colliding keys share a bucket, chained or probed."}).start()
api_base = server.url if server else args.api_base
if api_base is None:
    parser.error("pass --api-base URL or --local")

router = None
if not (resources.files("smartllm") / "assets" / "router.onnx").is_file():
    # NOTE: until the package ships a router, build a small linear one.
    from smartllm.testing import build_router

    router = str(build_router(tempfile.mkdtemp(), POOL, quality={"openai/gpt-4o": 0.8}))

asyncio.run(main(api_base, router))
if server:
    server.stop()
