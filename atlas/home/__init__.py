"""Home Assistant: act on the home and answer from its state.

The turn flow (router, assistant) calls into this package; it never imports the turn
flow. `HomeStage` is the device-request stage the router consults first; `HomeClient`
speaks Home Assistant's REST and WebSocket APIs; `home_tools` gives the agent tier the
same hands, behind an allow-list and a spoken confirmation for doors, locks and alarms.
"""

from atlas.home.client import EntityState, HomeClient, HomeError
from atlas.home.config import HomeAssistantConfig, HomeConnection, connect
from atlas.home.stage import HomeReply, HomeStage

__all__ = [
    "EntityState",
    "HomeAssistantConfig",
    "HomeClient",
    "HomeConnection",
    "HomeError",
    "HomeReply",
    "HomeStage",
    "connect",
]
