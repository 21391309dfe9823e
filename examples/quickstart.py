"""Route one request, then send feedback for it.

Against the bundled local test server (no API key, no network):

    python examples/quickstart.py --local

Against any OpenAI-compatible server:

    python examples/quickstart.py --api-base http://127.0.0.1:8000/v1
"""

from __future__ import annotations

import argparse
import os

from smartllm import Client

# Two models of the bundled router's pool, served here by one endpoint.
POOL = ["gpt-4o-2024-05-13", "gemini/gemini-1.5-flash"]

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

# "model" is the litellm id to call: the openai/ provider speaks to any
# OpenAI-compatible api_base, whatever the pool name.
client = Client(
    models={
        name: {
            "model": "openai/" + name.split("/")[-1],
            "api_base": api_base,
            "api_key": os.environ.get("OPENAI_API_KEY", "none"),
        }
        for name in POOL
    },
)
response = client.complete("Prove that the square root of 2 is irrational.", budget=0.002)
print(f"{response.model} answered for ${response.cost:.6f}: {response.text}")
print("probabilities:", response.routing.probabilities)
client.feedback(response.request_id, score=1.0)

if server:
    server.stop()
