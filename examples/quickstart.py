"""Route one request, then send feedback for it.

Against the bundled local test server (no API key, no network):

    python examples/quickstart.py --local

Against any OpenAI-compatible server:

    python examples/quickstart.py --api-base http://127.0.0.1:8000/v1
"""

from __future__ import annotations

import argparse
import os
import tempfile
from importlib import resources

from smartllm import Client

POOL = ["openai/gpt-4o-mini", "openai/gpt-4o"]

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--api-base", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
parser.add_argument("--local", action="store_true", help="start the local test server")
args = parser.parse_args()

server = None
if args.local:
    from smartllm.testing import OpenAIServer

    server = OpenAIServer(answers={"*": "The square root of 2 is irrational."}).start()
api_base = server.url if server else args.api_base
if api_base is None:
    parser.error("pass --api-base URL or --local")

router = None
if not (resources.files("smartllm") / "assets" / "router.onnx").is_file():
    # NOTE: until the package ships a router, build a small linear one.
    from smartllm.testing import build_router

    router = build_router(tempfile.mkdtemp(), POOL, quality={"openai/gpt-4o": 0.8})

client = Client(
    models={name: {"api_base": api_base, "api_key": os.environ.get("OPENAI_API_KEY", "none")}
            for name in POOL},
    router=router,
)
response = client.complete("Prove that the square root of 2 is irrational.", budget=0.002)
print(f"{response.model} answered for ${response.cost:.6f}: {response.text}")
print("probabilities:", response.routing.probabilities)
client.feedback(response.request_id, score=1.0)

if server:
    server.stop()
