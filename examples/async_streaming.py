"""Stream a routed answer with asyncio.

    python examples/async_streaming.py --local
    python examples/async_streaming.py --api-base http://127.0.0.1:8000/v1
"""

from __future__ import annotations

import argparse
import asyncio
import os

from smartllm import Client

# Models the bundled router was not trained on: each starts from the router
# model with the nearest price (cold start) and keeps a share of exploration.
POOL = ["openai/gpt-4o-mini", "openai/gpt-4o"]


async def main(api_base: str) -> None:
    client = Client(
        models={name: {"api_base": api_base, "api_key": os.environ.get("OPENAI_API_KEY", "none")}
                for name in POOL},
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

asyncio.run(main(api_base))
if server:
    server.stop()
