"""Settings every test needs before any module imports litellm."""

import os

# litellm fetches its price map over the network at import unless this is set;
# the tests must never leave the machine.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
