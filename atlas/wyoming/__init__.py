"""Wyoming, the protocol Home Assistant and `wyoming-satellite` speak.

* `services`: ATLAS's engines as Wyoming services (`atlas serve-wyoming`): asr, tts, handle.
* `satellite`: ATLAS as the server of Wyoming satellites (`atlas run --satellite ...`):
  one room per satellite, each with its own conversation over the shared engines.

Wyoming has no authentication: everything here binds to loopback unless told otherwise.
"""
