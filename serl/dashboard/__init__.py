"""The operator's dashboard: a web page served by the actor, showing what the policy sees and does,
the reward classifier's verdict, the learner's and the robot's state, with the operator controls.

- `config`: `DashboardConfig` (address, whether the page may control the actor).
- `board`: the latest-value store between the actor's thread (the only writer, never waiting) and
  the server's threads; a slow or closed browser skips states, it never slows the loop.
- `feed`: what the actor loop calls at each reset, step and episode end.
- `access`: the per-run token and the checks every request passes (Host, Origin, token, body).
- `controls`: `PageControls`, the page's buttons as an `InterventionDevice` of operator controls,
  merged with the hardware device's.
- `server`: the HTTP server (the page, a Server-Sent Events stream, JPEG frames, controls).
"""
