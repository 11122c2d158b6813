"""Home Assistant: act on the home and answer from its state.

The turn flow (router, assistant) calls into this package; it never imports the turn
flow. `stage.HomeStage` is the device-request stage the router consults first;
`client.HomeClient` speaks Home Assistant's REST and WebSocket APIs; `tools.home_tools`
gives the agent tier the same hands, behind an allow-list and a spoken confirmation for
doors, locks and alarms; `config` holds its settings (imported by atlas.settings, so
this file imports nothing).
"""
