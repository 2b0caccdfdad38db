"""The browser annotation tool: paint, propagate with `stm.VideoPredictor`, correct, export.

server (routes only) -> annotator (the person's session: edits, undo, objects, propagation) ->
workspace (PNGs, state, interaction log on disk) and jobs (long work off the event loop); static/ is
the page. `annotate.py` starts it; scripts/replay_interactions.py replays a workspace's log.
"""
